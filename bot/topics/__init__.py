"""Topics: shopper messages embedded with the NLU's sentence encoder, clustered, named and counted, for the
lead console (see the README, "Support-lead console", "Topics")."""
