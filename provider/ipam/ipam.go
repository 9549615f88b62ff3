// Package ipam plans the blocks of an IP pool: one block of blockSize per node, stable across
// plans (an existing allocation never moves; a new node takes the lowest free block; a
// removed node frees its block), as Calico's block affinities behave.
package ipam

import (
	"fmt"
	"math/big"
	"net/netip"
	"sort"
)

// Blocks is how many blocks of size bits a pool has (capped at max to stay countable).
func Blocks(pool netip.Prefix, bits int) uint64 {
	n := bits - pool.Bits()
	if n >= 63 {
		return 1 << 63
	}
	return 1 << uint(n)
}

// Allocate gives every node a block of the pool. prev are the allocations of the last plan:
// those of nodes still there are kept when they are still valid blocks of this pool and
// size. It fails, saying how many blocks the pool has and how many are needed, when the
// nodes outnumber the blocks.
func Allocate(pool netip.Prefix, bits int, nodes []string, prev map[string]netip.Prefix) (map[string]netip.Prefix, error) {
	if bits < pool.Bits() || bits > 32 {
		return nil, fmt.Errorf("block size /%d is outside the pool %s: allowed /%d to /32", bits, pool, pool.Bits())
	}
	total := Blocks(pool, bits)
	if uint64(len(nodes)) > total {
		return nil, fmt.Errorf("pool %s has %d blocks of /%d and %d nodes need one each: use a larger pool or a smaller block (a larger block_size)", pool, total, bits, len(nodes))
	}
	out := map[string]netip.Prefix{}
	used := map[netip.Prefix]bool{}
	sorted := append([]string(nil), nodes...)
	sort.Strings(sorted)
	for _, n := range sorted {
		b, ok := prev[n]
		if ok && b.Bits() == bits && pool.Contains(b.Addr()) && b.Masked() == b && !used[b] {
			out[n], used[b] = b, true
		}
	}
	next := uint64(0)
	for _, n := range sorted {
		if _, ok := out[n]; ok {
			continue
		}
		for ; ; next++ {
			b := block(pool, bits, next)
			if !used[b] {
				out[n], used[b] = b, true
				break
			}
		}
	}
	return out, nil
}

// block is the i-th block of size bits in pool.
func block(pool netip.Prefix, bits int, i uint64) netip.Prefix {
	base := new(big.Int).SetBytes(pool.Addr().AsSlice())
	off := new(big.Int).Lsh(new(big.Int).SetUint64(i), uint(32-bits))
	v := new(big.Int).Add(base, off).Bytes()
	var a [4]byte
	copy(a[4-len(v):], v)
	return netip.PrefixFrom(netip.AddrFrom4(a), bits)
}
