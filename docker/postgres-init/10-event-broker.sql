-- Rasa's SQL event broker writes every event to its own database (its table is also called "events",
-- like the tracker store's in the shop database). Runs once, when the pg-data volume is created.
CREATE DATABASE shop_events OWNER shop;
