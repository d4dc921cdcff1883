// Package connstr parses, validates and formats Azure IoT Hub
// connection strings: service policies, devices, modules, IoT Edge
// (GatewayHostName) and the Event Hub-compatible endpoint.
//
//	cs, err := connstr.Parse("HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=c2VjcmV0")
//	if err != nil { ... }               // a *ParseError naming the key and the problem
//	cs.Kind                             // connstr.KindDevice
//	fmt.Println(cs)                     // HostName=...;DeviceId=dev1;SharedAccessKey=REDACTED
//	cs.Format()                         // the whole string, key included
//
// A HostName may carry a port ("localhost:8443"), which iotctl honours
// for every protocol. See Parse for the exact rules and how strict
// each kind is.
package connstr
