// Package keyspace holds helpers on ordered byte keys shared by the public
// typed stores (package state) and the storage engines (internal/storage).
package keyspace

import "slices"

// PrefixSuccessor returns the smallest key greater than every key starting
// with p, or nil (unbounded) when there is none (p empty or all 0xff).
func PrefixSuccessor(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			s := slices.Clone(p[:i+1])
			s[i]++
			return s
		}
	}
	return nil
}
