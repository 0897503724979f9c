#include "logging.h"

#include "secretredactor.h"

#include <atomic>

Q_LOGGING_CATEGORY(lcServer, "keyrelay.server", QtInfoMsg)
Q_LOGGING_CATEGORY(lcForward, "keyrelay.forward", QtInfoMsg)
Q_LOGGING_CATEGORY(lcKeys, "keyrelay.keys", QtInfoMsg)
Q_LOGGING_CATEGORY(lcRewrite, "keyrelay.rewrite", QtInfoMsg)
Q_LOGGING_CATEGORY(lcSettings, "keyrelay.settings", QtInfoMsg)

namespace keyrelay {

namespace {
std::atomic<const SecretRedactor *> g_redactor { nullptr };
QtMessageHandler g_previousHandler = nullptr;

void redactingHandler(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    const SecretRedactor *redactor = g_redactor.load();
    const QString clean = redactor ? redactor->redact(message) : SecretRedactor::redactPatterns(message);
    if (g_previousHandler)
        g_previousHandler(type, context, clean);
}
} // namespace

void installRedactingMessageHandler(const SecretRedactor *redactor)
{
    g_redactor.store(redactor);
    if (redactor && !g_previousHandler) {
        g_previousHandler = qInstallMessageHandler(redactingHandler);
    } else if (!redactor && g_previousHandler) {
        qInstallMessageHandler(g_previousHandler);
        g_previousHandler = nullptr;
    }
}

} // namespace keyrelay
