"""The lab: real Debian hosts in Docker containers, reached over real SSH."""
