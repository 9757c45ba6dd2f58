/* Debian's libpcap.a is built with D-Bus capture ("dbus-system"/"dbus-session" pseudo-devices), so a
 * static link needs libdbus-1.a, which in turn needs libsystemd, of which Debian ships no archive.
 * kmesh-probe never captures on D-Bus: these stand-ins make opening such a device fail (no bus), and
 * nothing else in libpcap reaches them. Only for the static kmesh-probe; every other binary links the
 * shared libpcap with the real libdbus. */
#include <stddef.h>

void* dbus_bus_get(int type, void* error) { (void)type; (void)error; return NULL; }
void* dbus_connection_open(const char* address, void* error) { (void)address; (void)error; return NULL; }
int dbus_bus_register(void* conn, void* error) { (void)conn; (void)error; return 0; }
void dbus_bus_add_match(void* conn, const char* rule, void* error) { (void)conn; (void)rule; (void)error; }
int dbus_error_is_set(const void* error) { (void)error; return 1; }
void dbus_error_free(void* error) { (void)error; }
void dbus_connection_unref(void* conn) { (void)conn; }
void dbus_connection_set_max_received_size(void* conn, long size) { (void)conn; (void)size; }
int dbus_connection_read_write(void* conn, int timeout) { (void)conn; (void)timeout; return 0; }
void* dbus_connection_pop_message(void* conn) { (void)conn; return NULL; }
int dbus_connection_send(void* conn, void* msg, void* serial) { (void)conn; (void)msg; (void)serial; return 0; }
void dbus_connection_flush(void* conn) { (void)conn; }
int dbus_message_is_signal(void* msg, const char* iface, const char* name) { (void)msg; (void)iface; (void)name; return 0; }
int dbus_message_marshal(void* msg, char** data, int* len) { (void)msg; (void)data; (void)len; return 0; }
void* dbus_message_demarshal(const char* data, int len, void* error) { (void)data; (void)len; (void)error; return NULL; }
void dbus_message_unref(void* msg) { (void)msg; }
void dbus_free(void* p) { (void)p; }
