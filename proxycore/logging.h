// Per-module logging categories of the proxy core.
#pragma once

#include <QLoggingCategory>

Q_DECLARE_LOGGING_CATEGORY(lcServer)
Q_DECLARE_LOGGING_CATEGORY(lcForward)
Q_DECLARE_LOGGING_CATEGORY(lcKeys)
Q_DECLARE_LOGGING_CATEGORY(lcRewrite)
Q_DECLARE_LOGGING_CATEGORY(lcSettings)

namespace keyrelay {
class SecretRedactor;
/// Routes every Qt log message of the process through @p redactor before the previous handler prints
/// it (stderr, journal). The handler is process-wide by nature; @p redactor must outlive its use, and
/// passing nullptr restores the previous handler.
void installRedactingMessageHandler(const SecretRedactor *redactor);
} // namespace keyrelay
