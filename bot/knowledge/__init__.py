"""Knowledge answers: the shop-policy file's entries found by meaning, and what a message asks about."""
