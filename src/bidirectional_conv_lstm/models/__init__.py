"""The models: each in one flat folder that every saved model carries as its remote code."""
