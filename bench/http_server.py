# A stock ThreadingHTTPServer (one thread per connection) answering every GET
# with a short body. Run unchanged natively, under coro-run, and under gevent
# (http_gevent.py). Prints "port N" once listening on 127.0.0.1.
#   python3 http_server.py [PORT]
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"    # keep-alive, as wrk expects
    # Headers and body go out in two writes: without TCP_NODELAY the second
    # waits for the client's delayed ACK (40 ms), whatever runs the threads.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = b"hello from a thread\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024


srv = Server(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print("port", srv.server_address[1], flush=True)
srv.serve_forever()
