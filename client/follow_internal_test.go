package client

import "testing"

func TestMayFollow(t *testing.T) {
	for _, tc := range []struct {
		from, leader string
		want         bool
	}{
		{"http", "http://10.0.0.2:7420", true},
		{"http", "https://node2.example.com", true},
		{"https", "https://node2.example.com:7420/ledger", true},
		{"https", "http://node2.example.com:7420", false}, // the token would travel in clear
		{"http", "node2:7420", false},
		{"http", "ftp://node2", false},
		{"http", "http://", false},
		{"http", "://bad", false},
	} {
		if got := (followLeader{scheme: tc.from}).mayFollow(tc.leader); got != tc.want {
			t.Errorf("from %s to %q: mayFollow = %v, want %v", tc.from, tc.leader, got, tc.want)
		}
	}
}
