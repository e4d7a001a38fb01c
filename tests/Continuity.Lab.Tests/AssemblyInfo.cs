// The lab is Linux-only (namespaces, iptables); so are its tests.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
