"""A real RTSP camera on loopback: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0), serving a solid colour as H.264 at 10 fps.

Run with the system Python, which has the GObject bindings:
    /usr/bin/python3 tests/rtsp_server.py PORT COLOUR [GOP [COLOUR:SECONDS,...]]
It prints "ready" once it listens on 127.0.0.1:PORT/cam.

GOP: frames between keyframes (default 10: one a second), with x264's scene-cut
keyframes off, as an IP camera's fixed GOP. A schedule (``blue:5,green:5``) makes
each client's stream start on COLOUR and turn to each listed colour after the
seconds given (from that client's start): a scene that changes between keyframes.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ARGB = {"red": 0xFFFF0000, "green": 0xFF00FF00, "blue": 0xFF0000FF}


def main() -> None:
    port, colour = sys.argv[1], sys.argv[2]
    gop = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    schedule = [(c, float(s)) for c, s in (part.split(":") for part in sys.argv[4].split(","))] \
        if len(sys.argv) > 4 else []
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc name=src is-live=true pattern=solid-color foreground-color={ARGB[colour]} "
        "! video/x-raw,width=320,height=240,framerate=10/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} option-string=scenecut=0 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    if schedule:
        factory.set_shared(False)  # each client's stream starts at the schedule's start

        def configure(_factory, media) -> None:  # noqa: ANN001
            src = media.get_element().get_by_name("src")
            at = 0.0
            for name, seconds in schedule:
                at += seconds
                GLib.timeout_add(int(at * 1000), lambda c=ARGB[name]: src.set_property("foreground-color", c))

        factory.connect("media-configure", configure)
    else:
        factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
