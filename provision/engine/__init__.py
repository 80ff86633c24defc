"""From desired state to a converged host: plan (a pure diff), converge
(probe, stage, commit over one connection), the agent's wire protocol, the
runner (forks, serial batches, progress) and text diffs with secrets masked."""
