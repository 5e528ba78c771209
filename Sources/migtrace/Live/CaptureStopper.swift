// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Ends a live capture cleanly and remembers why: SIGINT, SIGTERM and SIGHUP, a reader of standard output that
/// went away (`| head`), or the caller (target exited, migration completed). The first reason wins.
final class CaptureStopper: Sendable {
    private let reason = Mutex<String?>(nil)
    private let stop: @Sendable () -> Void
    // SAFETY: the sources are set once in init and only cancelled in deinit.
    nonisolated(unsafe) private var sources: [any DispatchSourceProtocol] = []

    /// Watches signals and standard output from now on; `stop` ends the capture (it may be called more than once).
    init(stop: @escaping @Sendable () -> Void) {
        self.stop = stop
        for (sig, name) in [(SIGINT, "sigint"), (SIGTERM, "sigterm"), (SIGHUP, "sighup")] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.end(name) }
            source.resume()
            sources.append(source)
        }
        // A closed pipe shows as POLLERR on the write end even when no event comes to be written.
        let outputWatch = DispatchSource.makeTimerSource(queue: .global())
        outputWatch.schedule(deadline: .now() + .milliseconds(200), repeating: .milliseconds(200))
        outputWatch.setEventHandler { [weak self] in
            var pfd = pollfd(fd: 1, events: 0, revents: 0)
            if poll(&pfd, 1, 0) == 1 && pfd.revents & Int16(POLLERR) != 0 { self?.end("output-closed") }
        }
        outputWatch.resume()
        sources.append(outputWatch)
    }

    deinit {
        for s in sources { s.cancel() }
    }

    /// End the capture for `why`, unless it already ends for another reason.
    func end(_ why: String) {
        reason.withLock { if $0 == nil { $0 = why } }
        stop()
    }

    /// Why the capture ended, if it has.
    var why: String? { reason.withLock { $0 } }
}
