package server_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/consentledger/consentledger/server"
)

func TestLoadConfigWitnesses(t *testing.T) {
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := server.LoadConfig(write(`
witnesses:
  - {name: w1, url: "http://127.0.0.1:7380/", vkey: "w1.example/w+31eaa015+BM+XPRqz96zTMslgIFKg+UC+i8WHruC6cZZKVRDzDKR8"}
  - name: w2
    url: https://w2.example/
    vkey: w2.example/w+7e4aaff0+BK0000000000000000000000000000000000000000000
witness_quorum: 1
witness_interval: 2500ms
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Witnesses) != 2 || c.Witnesses[1].Name != "w2" || c.Witnesses[0].URL != "http://127.0.0.1:7380/" || c.WitnessQuorum != 1 || c.WitnessInterval != 2500*time.Millisecond {
		t.Errorf("config %+v", c)
	}
	for _, bad := range []string{"witness_interval: soon\n", "witnesses: [{name: w, url: u, vkey: k, extra: 1}]\n", "witness_quorum: many\n"} {
		if _, err := server.LoadConfig(write(bad)); err == nil {
			t.Errorf("LoadConfig(%q) accepted", bad)
		}
	}
}
