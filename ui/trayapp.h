// The tray application's composition root.
#pragma once

namespace keyrelay {

/// Creates the application, its settings, key pool, key store, proxy, window and tray icon, wires
/// them together and runs the event loop. @p setIdentity sets the organisation/application names
/// (so settings and paths match the headless mode). Returns the exit code.
int runTrayApp(int argc, char **argv, void (*setIdentity)());

} // namespace keyrelay
