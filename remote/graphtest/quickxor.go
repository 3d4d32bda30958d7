package graphtest

import (
	"encoding/base64"
	"encoding/binary"
)

// quickXor computes OneDrive's quickXorHash (docs/graph-contract.md §9): a
// 160-bit state A = 0; byte i is XORed into A rotated left by (11·i) mod
// 160 bits; the digest is A as 20 little-endian bytes with the 64-bit
// little-endian data length XORed into bytes 12..19.
//
// Because 11·160 ≡ 0 (mod 160), bytes whose indices agree modulo 160 land
// at the same rotation. The hasher therefore XORs the data, 160-byte block
// by block, into a 160-byte accumulator (twenty 64-bit words at a time) and
// applies the rotations once, in sum. The position of each byte is all that
// matters, and zero bytes leave the accumulator unchanged, so writeAt can
// hash the data extents of a sparse file and skip its holes: only the
// length (setLength) accounts for them.
type quickXor struct {
	// acc holds, for each residue r = i mod 160, the XOR of all bytes with
	// that index residue; acc[w] byte b is residue 8w+b (little-endian).
	acc    [20]uint64
	length int64 // bytes hashed so far (Write) or the declared length
}

const qxBlock = 160

// Write hashes p as the bytes following those already written.
func (q *quickXor) Write(p []byte) (int, error) {
	q.writeAt(p, q.length)
	q.length += int64(len(p))
	return len(p), nil
}

// writeAt hashes p as the bytes at offset off. It does not change the
// length: with writeAt, call setLength with the total size at the end.
// Ranges must not overlap (XOR twice cancels).
func (q *quickXor) writeAt(p []byte, off int64) {
	pos := int(off % qxBlock)
	// Head: bytes up to the next block boundary, one at a time.
	if pos != 0 {
		for len(p) > 0 && pos < qxBlock {
			q.xorByte(pos, p[0])
			p = p[1:]
			pos++
		}
	}
	// Full blocks: twenty words each.
	for len(p) >= qxBlock {
		for w := 0; w < 20; w++ {
			q.acc[w] ^= binary.LittleEndian.Uint64(p[8*w:])
		}
		p = p[qxBlock:]
	}
	// Tail.
	for i, b := range p {
		q.xorByte(i, b)
	}
}

func (q *quickXor) xorByte(residue int, b byte) {
	q.acc[residue/8] ^= uint64(b) << (8 * (residue % 8))
}

// setLength declares the total data length (holes included).
func (q *quickXor) setLength(n int64) { q.length = n }

// Sum returns the 20-byte digest.
func (q *quickXor) Sum() []byte {
	var a [20]byte
	for r := 0; r < qxBlock; r++ {
		v := byte(q.acc[r/8] >> (8 * (r % 8)))
		if v == 0 {
			continue
		}
		bit := (11 * r) % 160
		idx, shift := bit/8, uint(bit%8)
		a[idx] ^= v << shift
		if shift != 0 {
			a[(idx+1)%20] ^= v >> (8 - shift)
		}
	}
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(q.length))
	for i := 0; i < 8; i++ {
		a[12+i] ^= l[i]
	}
	return a[:]
}

// base64 returns the digest as the service renders it (standard, padded).
func (q *quickXor) base64() string {
	return base64.StdEncoding.EncodeToString(q.Sum())
}
