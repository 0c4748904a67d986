package main

import (
	"bytes"
	"strings"
	"testing"
)

// Both connection-string forms are accepted, and no error or log line
// derived from one shows its password.
func TestDatabaseURLFormsAndRedaction(t *testing.T) {
	const secret = "s3cr3t-Pa55"
	ok := []string{
		"postgres://app:" + secret + "@127.0.0.1:5432/db?sslmode=disable",
		"host=127.0.0.1 port=5432 user=app password=" + secret + " dbname=db sslmode=disable",
		"host=127.0.0.1 password='" + secret + "' dbname=db",
	}
	for _, dsn := range ok {
		if _, err := parseConfig([]string{"-database-url", dsn}, func(string) (string, bool) { return "", false }, &bytes.Buffer{}); err != nil {
			t.Errorf("%s: %v", redactURL(dsn), err)
		}
		if r := redactURL(dsn); strings.Contains(r, secret) {
			t.Errorf("redactURL shows the password: %s", r)
		}
	}
	bad := []string{
		"host=127.0.0.1 password=" + secret + " port=notaport",
		"postgres://app:" + secret + "@127.0.0.1:notaport/db",
	}
	for _, dsn := range bad {
		_, err := parseConfig([]string{"-database-url", dsn}, func(string) (string, bool) { return "", false }, &bytes.Buffer{})
		if err == nil {
			t.Errorf("%s accepted", redactURL(dsn))
			continue
		}
		if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "-database-url") {
			t.Errorf("error shows the password or does not name the flag: %v", err)
		}
	}
}
