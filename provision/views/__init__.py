"""What a person sees: rich tables and JSON documents of results, roles and inventories.

Shared by the CLI and by onboarding, which prints as it goes."""
