"""The web console: server-rendered pages for people, served by the gateway at `/`.

Signed in with an API key, a person gets a server-side session (`sessions`); every
page reads the services as that key's principal, through the same signed identity
the facade forwards (`backend`), so a page can show nothing its key could not read.
"""
