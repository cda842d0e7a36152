"""A real RTSP camera on loopback: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0), serving a solid colour as H.264 at 10 fps.

Run with the system Python, which has the GObject bindings:
    /usr/bin/python3 tests/rtsp_server.py PORT COLOUR
It prints "ready" once it listens on 127.0.0.1:PORT/cam.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ARGB = {"red": 0xFFFF0000, "green": 0xFF00FF00, "blue": 0xFF0000FF}


def main() -> None:
    port, colour = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=solid-color foreground-color={ARGB[colour]} "
        "! video/x-raw,width=320,height=240,framerate=10/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
