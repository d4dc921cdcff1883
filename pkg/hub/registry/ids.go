package registry

// MaxIDLength is the longest device or module id IoT Hub accepts.
const MaxIDLength = 128

// idSpecial is the union of the special characters the IoT Hub docs
// have allowed in device and module ids over time (the versions of
// https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-identity-registry
// list "- . + % _ # * ? ! ( ) , = @ $ '" or "- . % _ * ? ! ( ) , : = @ $ '"):
// - . + % _ # * ? ! ( ) , : = @ $ '
const idSpecial = "-.+%_#*?!(),:=@$'"

// ValidID reports whether id is a valid device or module id: 1 to 128
// ASCII letters, digits or characters from "-.+%_#*?!(),:=@$'".
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			ok := false
			for j := 0; j < len(idSpecial); j++ {
				if idSpecial[j] == c {
					ok = true
					break
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

func checkDeviceID(id string) error {
	if !ValidID(id) {
		return newErr(ErrArgumentInvalid, "device id %q is not valid: it must have 1 to %d ASCII letters, digits or %s", clip(id), MaxIDLength, idSpecial)
	}
	return nil
}

func checkModuleID(id string) error {
	if !ValidID(id) {
		return newErr(ErrArgumentInvalid, "module id %q is not valid: it must have 1 to %d ASCII letters, digits or %s", clip(id), MaxIDLength, idSpecial)
	}
	return nil
}

// clip shortens s for error messages.
func clip(s string) string {
	if len(s) > 140 {
		return s[:137] + "..."
	}
	return s
}
