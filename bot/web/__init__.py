"""The gateway: demo shop, widget, chat websocket and JSON API in front of Rasa."""
