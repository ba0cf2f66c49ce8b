"""Analyst exports, derived outcomes, the codebook and the CONSORT flow."""
