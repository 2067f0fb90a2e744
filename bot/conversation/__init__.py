"""The shopper's conversation with the shop: the one path a message takes, whatever transport brought it."""
