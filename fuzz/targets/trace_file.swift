// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: a whole file (log or recording) through MigtraceIO's TraceReader over an unlinked tmpfs file into a
// MigrationAnalyzer with a no-op sink, so the analyzer, the arithmetic and every rule run too.
#if canImport(Glibc)
import Glibc
#endif
import MigtraceCore
import MigtraceIO

final class NullSink: AnalysisSink {
    func seriesStarted(_ info: SeriesInfo) {}
    func window(_ window: AnalyzedWindow, in series: SeriesInfo) {}
    func finding(_ finding: Finding) {}
    func seriesEnded(_ summary: SeriesSummary) {}
    func finished(_ report: AnalysisReport) {}
}

nonisolated(unsafe) var memfd: Int32 = -1

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    if memfd < 0 {
        // An unlinked file in tmpfs (memfd_create is not exported to Swift by Glibc).
        var template = Array("/dev/shm/migtrace-fuzz-XXXXXX".utf8CString)
        memfd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(memfd >= 0, "mkstemp failed")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    }
    precondition(ftruncate(memfd, 0) == 0)
    var done = 0
    while done < size {
        let n = pwrite(memfd, data! + done, size - done, off_t(done))
        precondition(n > 0)
        done += n
    }
    precondition(lseek(memfd, 0, SEEK_SET) == 0)
    let analyzer = MigrationAnalyzer(sink: NullSink())
    _ = try? TraceReader.read(fd: memfd, input: 0, into: analyzer)
    analyzer.finish()
    return 0
}
