#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that bench/faults.sh cuts to take the database
away: while the file CUT exists, every connection through it is closed and
new ones are closed at once (as when PostgreSQL is stopped); when the file
is gone, connections pass again. Ends by itself after MAX_SECS.

    python3 bench/cut_proxy.py LISTEN_PORT UPSTREAM_PORT CUT MAX_SECS
"""
import asyncio
import os
import sys

listen, upstream, cut_file, max_secs = (
    int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
links = set()


def is_cut():
    return os.path.exists(cut_file)


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def client(reader, writer):
    if is_cut():
        writer.close()
        return
    try:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
    except OSError:
        writer.close()
        return
    tasks = {asyncio.ensure_future(pipe(reader, up_writer)),
             asyncio.ensure_future(pipe(up_reader, writer))}
    links.update(tasks)
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        t.cancel()
        links.discard(t)


async def main():
    server = await asyncio.start_server(client, "127.0.0.1", listen)
    was_cut = False
    loop = asyncio.get_running_loop()
    end = loop.time() + max_secs
    while loop.time() < end:
        now_cut = is_cut()
        if now_cut and not was_cut:
            print(f"cut: closing {len(links) // 2} connections", flush=True)
        if now_cut:
            for t in list(links):
                t.cancel()
        if was_cut and not now_cut:
            print("restored", flush=True)
        was_cut = now_cut
        await asyncio.sleep(0.1)
    server.close()


asyncio.run(main())
