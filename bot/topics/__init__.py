"""Topics: shopper messages embedded with the NLU's sentence encoder, clustered, named and counted, for the
lead console (see docs/lead-console.md, "Topics")."""
