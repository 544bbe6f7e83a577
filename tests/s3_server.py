"""A real S3-compatible server on loopback for the tests: moto's, in a thread, with request
signatures checked against IAM, so that a wrong key is refused the way a real store refuses it."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass

import boto3
import httpx
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
READ_WRITE = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


class S3Server:
    """moto's server on 127.0.0.1 (a free port), with one IAM user allowed s3:* and every request
    after setup authenticated. Use `with S3Server() as server:`."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._werkzeug_level = logging.NOTSET
        self.endpoint = ""
        self.keys = Keys("", "")

    def __enter__(self) -> S3Server:
        werkzeug = logging.getLogger("werkzeug")  # one access-log line per request otherwise
        self._werkzeug_level = werkzeug.level
        werkzeug.setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION,
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="replaybench")
        iam.put_user_policy(UserName="replaybench", PolicyName="logs",
                            PolicyDocument=json.dumps(READ_WRITE))
        key = iam.create_access_key(UserName="replaybench")["AccessKey"]
        self.keys = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        self._auth(0)  # from here on, a request with a wrong key or signature is refused
        return self

    def __exit__(self, *exc) -> None:
        self._auth(float("inf"))
        httpx.post(f"{self.endpoint}/moto-api/reset")
        self._server.stop()
        logging.getLogger("werkzeug").setLevel(self._werkzeug_level)

    def _auth(self, free_requests: float) -> None:
        httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=str(free_requests).encode())\
            .raise_for_status()

    def env(self) -> dict[str, str]:
        """The environment variables a deployment would set to read this store."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.keys.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.keys.secret_access_key, "AWS_DEFAULT_REGION": REGION}

    def client(self):
        """A boto3 S3 client with the good keys (what writes the logs in the tests)."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=self.keys.access_key_id,
                            aws_secret_access_key=self.keys.secret_access_key)

    def new_bucket(self) -> str:
        """A bucket of its own for one test."""
        name = f"llm-logs-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name
