// SPDX-License-Identifier: Apache-2.0
//
// Checks the CSV/JSON double writer (ASCIIWriter.exact, whose fast path is ShortestDecimal) against its
// definition: whole numbers below 10^15 as integers, every other value exactly as `Double.description`.
// Compiled together with Sources/MigtraceCore/Output/{NumberText,ASCIIWriter,ShortestDecimal}.swift by bench/verify-doubles.
import Glibc

func reference(_ v: Double) -> String {
    guard v.isFinite else { return "null" }
    if v == v.rounded(), abs(v) < 1e15 { return (v < 0 ? "-" : "") + String(UInt64(abs(v))) }
    return v.description
}

let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
func written(_ v: Double) -> String {
    var w = ASCIIWriter(scratch)
    w.exact(v)
    return String(decoding: UnsafeBufferPointer(start: scratch, count: w.count), as: UTF8.self)
}

var rng = SystemRandomNumberGenerator()
var checked = 0
var fast = 0
var failures = 0
func check(_ v: Double) {
    checked += 1
    let expected = reference(v)
    let got = written(v)
    if expected != got {
        failures += 1
        if failures <= 20 { print("MISMATCH bits \(v.bitPattern): description \(expected), written \(got)") }
    }
    let m = abs(v)
    if m >= ShortestDecimal.lowerBound && m < 1e15 && v != v.rounded() && ShortestDecimal.digits(m) != nil { fast += 1 }
}

let n = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 1_000_000 : 1_000_000
let only = CommandLine.arguments.count > 2 ? CommandLine.arguments[2] : "all"
func run(_ name: String, _ body: () -> Void) {
    guard only == "all" || only == name else { return }
    let (c0, f0, x0) = (checked, fast, failures)
    body()
    print("\(name): \(checked - c0) checked, \(fast - f0) on the fast path, \(failures - x0) mismatches")
}

// Any bit pattern: every class (NaN, infinities, subnormals, huge and tiny values) in proportion.
run("bits") { for _ in 0..<n { check(Double(bitPattern: rng.next())) } }
// Log-uniform over the positional range and a margin on both sides, with the neighbours.
run("loguniform") {
    for _ in 0..<n {
        let v = pow(10, Double.random(in: -4.5...15.5, using: &rng))
        check(v)
        check(-v)
        check(v.nextUp)
        check(v.nextDown)
    }
}
// What analysis writes: QEMU's bandwidth and Mbit/s quotients, MB/s, MB.
run("quotients") {
    for _ in 0..<n {
        let a = UInt64.random(in: 0...(1 << UInt64.random(in: 1...50, using: &rng)), using: &rng)
        let b = UInt64.random(in: 1...(1 << UInt64.random(in: 1...20, using: &rng)), using: &rng)
        let bw = Double(a) / Double(b)
        check(bw)
        check(((Double(a) * 8.0) / (Double(b) / 1000.0)) / 1000.0 / 1000.0)
        check(bw / 1000)
        check(Double(a) / 1_000_000)
        check(Double(b) / 1000)
    }
}
// Short decimals and their neighbours: a short decimal on the edge of a rounding interval is where a
// shortest-digits writer goes wrong.
run("shortdecimals") {
    for _ in 0..<n {
        let v = Double("\(UInt64.random(in: 1...999_999, using: &rng))e\(Int.random(in: -10...12, using: &rng))")!
        for x in [v, v.nextUp, v.nextDown, v.nextUp.nextUp, v.nextDown.nextDown] { check(x) }
    }
}
// Specials, every power of ten and of two with neighbours, halves, a fine geometric sweep, subnormals.
run("edges") {
    var values: [Double] = [
        0, -0.0, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, .infinity, -.infinity, .nan,
        1e-4, 1e15, 1e16, 0x1p52, 0x1p53, 0x1p54, 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 0.5, 1.5, 4_503_599_627_370_495.5,
    ]
    for k in -330...330 {
        let p = Double("1e\(k)")!
        values += [p, p.nextUp, p.nextDown, -p]
    }
    for k in -1074...1023 {
        let p = Double(sign: .plus, exponent: k, significand: 1)
        values += [p, p.nextUp, p.nextDown, p * 1.5, p * 3 / 4]
    }
    for i in 0..<100_000 {
        let x = Double(i) + 0.5
        values += [x, x / 1024, x / 1e6]
    }
    var x = 1e-4
    while x < 1e15 {
        values += [x, x.nextUp, x.nextDown]
        x *= 1.0001
    }
    for _ in 0..<n { values.append(Double(bitPattern: UInt64.random(in: 0...(1 << 52), using: &rng))) }
    for v in values { check(v) }
}
print("total \(checked) checked, \(fast) on the fast path, \(failures) mismatches")
exit(failures == 0 ? 0 : 1)
