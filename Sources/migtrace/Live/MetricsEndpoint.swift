// SPDX-License-Identifier: Apache-2.0
import MigtraceCore
import MigtraceIO

/// `--metrics HOST:PORT`: the store every captured VM writes to and the HTTP server that renders it at `/metrics`.
struct MetricsEndpoint {
    let store: MetricsStore
    let server: MetricsServer

    /// Listen on `address` (checked by the options already); a port in use or not of this host is an error (1).
    static func start(address: String) throws(LiveFailure) -> MetricsEndpoint {
        let store = MetricsStore()
        do {
            let server = try MetricsServer.start(address: address) { store.render() }
            printError("migtrace: metrics at http://\(server.address)/metrics")
            return MetricsEndpoint(store: store, server: server)
        } catch {
            throw LiveFailure(message: error.description, code: MigtraceExit.error)
        }
    }

    private init(store: MetricsStore, server: MetricsServer) {
        self.store = store
        self.server = server
    }

    /// The sink of the capture of `pid`, labelled with its QEMU `-name` (empty when it has none).
    func sink(pid: Int32, name: String? = nil) -> MetricsSink {
        MetricsSink(store: store, pid: pid, name: name ?? QEMUCommandLine.vmName(pid: pid) ?? "")
    }
}
