package provider

import (
	"testing"
)

func TestAgentAddress(t *testing.T) {
	for in, want := range map[string]string{
		"192.168.0.21:7707": "192.168.0.21:7707",
		"192.168.0.21":      "192.168.0.21:7707",
		"node1.example":     "node1.example:7707",
		"[fd00::1]:9000":    "[fd00::1]:9000",
		"[fd00::1]":         "[fd00::1]:7707",
	} {
		got, err := agentAddress(in)
		if err != nil || got != want {
			t.Errorf("agentAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "192.168.0.21:0", "192.168.0.21:70000", ":7707", "a b:1"} {
		if got, err := agentAddress(bad); err == nil {
			t.Errorf("agentAddress(%q) = %q, want an error", bad, got)
		}
	}
}
