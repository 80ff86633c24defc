"""A minimal SMTP sink (stdlib only, runs on the test host): accepts every
message and appends one JSON line per message: the client's address, its
HELO name and the envelope sender. Usage: sink.py ADDRESS PORT LOGFILE."""

import json
import socketserver
import sys


class Session(socketserver.StreamRequestHandler):
    def reply(self, text: str) -> None:
        self.wfile.write((text + "\r\n").encode())

    def handle(self) -> None:
        helo, sender = "", ""
        self.reply("220 sink ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"HELO", b"EHLO"):
                helo = line[5:].strip().decode()
                self.reply("250 sink")
            elif verb == b"MAIL":
                sender = line.decode().split(":", 1)[1].strip().strip("<>").split(">")[0]
                self.reply("250 ok")
            elif verb == b"RCPT":
                self.reply("250 ok")
            elif verb == b"DATA":
                self.reply("354 go on")
                while self.rfile.readline() not in (b".\r\n", b".\n", b""):
                    pass
                with open(sys.argv[3], "a") as log:
                    log.write(json.dumps({"peer": self.client_address[0], "helo": helo, "sender": sender}) + "\n")
                self.reply("250 queued")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server((sys.argv[1], int(sys.argv[2])), Session).serve_forever()
