package main

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHealthcheckProbesTheRunningServer(t *testing.T) {
	in := newInstance(t)
	in.run(t, "demo")
	cmd := exec.Command(binary, "healthcheck")
	cmd.Env = in.env
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "nothing listens yet: %s", out)
	require.Contains(t, string(out), "healthcheck")

	in.serve(t)
	in.run(t, "healthcheck")
}

func TestProbeAddrDialsLoopbackForAnyInterface(t *testing.T) {
	require.Equal(t, "127.0.0.1:8080", probeAddr("0.0.0.0:8080"))
	require.Equal(t, "127.0.0.1:8080", probeAddr(":8080"))
	require.Equal(t, "127.0.0.1:8080", probeAddr("[::]:8080"))
	require.Equal(t, "10.0.0.5:9000", probeAddr("10.0.0.5:9000"))
}
