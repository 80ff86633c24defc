"""Fleet reports: per host and Postfix instance, the transports' bound
addresses with their reverse DNS, drift, certificate expiry and queues."""
