// `keyrelay --headless`: the proxy without any GUI, for servers, scripts, tests and benchmarks.
#pragma once

class QCoreApplication;

namespace keyrelay {

/// Parses the command line of @p app, runs the proxy until SIGINT/SIGTERM, returns the exit code.
int runHeadless(QCoreApplication &app);

} // namespace keyrelay
