package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/pentecost/pentecost/realtime"
)

// TestLoadConfig_AccountCheck: live speakers' tokens are checked again
// every 5 s unless SPEAKER_ACCOUNT_CHECK_SECONDS or --account-check says
// otherwise; 0 turns the checks off.
func TestLoadConfig_AccountCheck(t *testing.T) {
	c, err := LoadConfig(nil, env(nil), &bytes.Buffer{})
	if err != nil || c.AccountCheck != realtime.DefaultAccountCheckInterval {
		t.Fatalf("default = %v, %v; want %v", c.AccountCheck, err, realtime.DefaultAccountCheckInterval)
	}
	c, err = LoadConfig(nil, env(map[string]string{"SPEAKER_ACCOUNT_CHECK_SECONDS": "0.5"}), &bytes.Buffer{})
	if err != nil || c.AccountCheck != 500*time.Millisecond {
		t.Fatalf("environment = %v, %v", c.AccountCheck, err)
	}
	c, err = LoadConfig([]string{"--account-check", "0"}, env(map[string]string{"SPEAKER_ACCOUNT_CHECK_SECONDS": "2"}), &bytes.Buffer{})
	if err != nil || c.AccountCheck != 0 {
		t.Fatalf("flag over environment = %v, %v", c.AccountCheck, err)
	}
}
