// Where a client's request path goes upstream: dot segments resolved inside the client's path,
// configured prefixes stripped, "/v1/v1" collapsed, joined with the upstream base path.
#pragma once

#include <QString>
#include <QStringList>

namespace keyrelay::UpstreamPath {

/// The path that goes upstream for a client path: prefixes stripped, "/v1/v1" collapsed, and a
/// base URL that already ends in "/v1" not doubled. @p clientPath must start with "/" and have its
/// dot segments resolved (resolveDotSegments()).
QString join(const QString &basePath, const QString &clientPath, const QStringList &stripPrefixes);

/// Resolves "." and ".." segments (also percent-encoded as "%2e") in a percent-encoded path, as
/// RFC 3986 5.2.4 does. Returns false for a malformed escape ("%zz"), a path that would climb above "/", or
/// that still holds a
/// ".." segment once "%2f" / "%5c" / "\" are read as slashes (an upstream might decode them).
/// Everything else stays as the client encoded it.
bool resolveDotSegments(const QString &path, QString *resolved);

} // namespace keyrelay::UpstreamPath
