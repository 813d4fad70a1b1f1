"""HTTP stand-ins for the services the TTS precache talks to (portal API, TTS proxy).

They exist for local runs, integration tests and benchmarks: small aiohttp apps with
admin endpoints that inject faults and expose what they saw.
"""
