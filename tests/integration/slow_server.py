# A ThreadingHTTPServer whose every answer takes DELAY seconds (time.sleep in
# the handler thread). Prints "port N" once listening on 127.0.0.1.
import http.server
import sys
import time

DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(DELAY)
        body = ("ok " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024


srv = Server(("127.0.0.1", 0), Handler)
print("port", srv.server_address[1], flush=True)
srv.serve_forever()
