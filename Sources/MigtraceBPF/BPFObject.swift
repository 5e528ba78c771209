// SPDX-License-Identifier: Apache-2.0

/// The compiled `bpf/migtrace.bpf.c`, embedded at build time by `BPFObjectPlugin`.
public enum BPFObject {
    /// The ELF bytes of the BPF object (decoded once).
    public static let bytes: [UInt8] = decodeBase64(migtraceBPFObjectBase64)

    /// Decodes standard base64 (with `=` padding, no whitespace) from a static string.
    static func decodeBase64(_ text: StaticString) -> [UInt8] {
        text.withUTF8Buffer { decodeBase64(bytes: $0) }
    }

    static func decodeBase64(bytes input: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            table[Int(c)] = UInt8(i)
        }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var acc: UInt32 = 0
        var bits = 0
        for c in input {
            if c == UInt8(ascii: "=") { break }
            let v = table[Int(c)]
            precondition(v != 0xff, "invalid base64 in the embedded BPF object")
            acc = (acc << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}
