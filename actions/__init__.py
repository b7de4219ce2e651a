"""Rasa custom actions (rasa_sdk action server)."""
