"""A worker of `parallel`: `python -m replaybench.ingest.parse_worker` parses the chunks of lines it
is sent on stdin and sends the parsed chunks back on stdout, until stdin closes."""

if __name__ == "__main__":
    from replaybench.ingest.parallel import serve

    serve()
