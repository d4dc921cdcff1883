package simulate

import (
	"math/rand/v2"
	"strconv"
)

// QuickstartBody returns the quickstart device's telemetry
// (Azure-Samples/azure-iot-samples-python
// iot-hub/Quickstarts/simulated-device-2/SimulatedDevice.py):
// {"temperature": t,"humidity": h} with t in [20, 35) and h in
// [60, 80), and the value of its temperatureAlert property, "true" when
// t > 30.
func QuickstartBody() (body []byte, alert string) {
	t := 20 + rand.Float64()*15
	h := 60 + rand.Float64()*20
	b := make([]byte, 0, 64)
	b = append(b, `{"temperature": `...)
	b = strconv.AppendFloat(b, t, 'f', -1, 64)
	b = append(b, `,"humidity": `...)
	b = strconv.AppendFloat(b, h, 'f', -1, 64)
	b = append(b, '}')
	alert = "false"
	if t > 30 {
		alert = "true"
	}
	return b, alert
}
