"""Real servers on loopback that remember what they were sent: the local model fleet keeping every
request body, and an aiosmtpd handler keeping every envelope."""

from __future__ import annotations

from aiohttp import web

from replaybench.sim.server import ThreadedFleet


class RecordingFleet(ThreadedFleet):
    """The local model fleet, with a middleware that keeps every request body it receives."""

    def __init__(self) -> None:
        super().__init__(time_scale=0)
        self.bodies: list[bytes] = []

        @web.middleware
        async def record(request: web.Request, handler):
            if request.method == "POST":
                self.bodies.append(await request.read())
            return await handler(request)

        self.app.middlewares.insert(0, record)


class Keep:
    """An aiosmtpd handler that keeps every envelope it receives."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"
