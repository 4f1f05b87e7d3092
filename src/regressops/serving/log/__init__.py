"""The prediction log: every answered row once, written off the request path, read back.

- :mod:`~regressops.serving.log.batch`: a request's rows and their columnar JSON lines;
- :mod:`~regressops.serving.log.sinks`: the JSON-lines file and SQL table sinks;
- :mod:`~regressops.serving.log.queue`: the queue the request path appends to and its writer thread;
- :mod:`~regressops.serving.log.process`: the writer process for large requests, and
  :func:`~regressops.serving.log.process.open_server_sink` (which sink a server writes through);
- :mod:`~regressops.serving.log.reader`: one record per row from either sink.
"""
