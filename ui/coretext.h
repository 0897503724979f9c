// KeyRelay's own English messages (the core's, which the headless mode and the clients get as they are),
// translated where the window shows them. Text the upstream wrote passes through unchanged.
#pragma once

#include <QCoreApplication>
#include <QString>

namespace keyrelay {

class CoreText
{
    Q_DECLARE_TR_FUNCTIONS(CoreText)
public:
    /// @p english in the user's language when it is one of the core's known messages; else as it is.
    static QString display(const QString &english);
    /// "the upstream 127.0.0.1:9 refused the connection": the place a failure without an HTTP answer
    /// names (the upstream, or the network proxy), for a short summary; empty when not known.
    enum class FailureKind { Unknown, Upstream, NetworkProxy, Tls };
    static FailureKind failureKind(const QString &english);

private:
    /// "the upstream X", "the HTTP proxy X", "the SOCKS5 proxy X", "the network proxy".
    static QString subject(const QString &english);
};

} // namespace keyrelay
