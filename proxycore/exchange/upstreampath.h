// Where a client's request path goes upstream: dot segments resolved inside the client's path,
// configured prefixes stripped, "/v1/v1" collapsed, joined with the upstream base path.
#pragma once

#include <QByteArray>
#include <QString>
#include <QStringList>
#include <QUrl>

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

/// The upstream URL for a client's request target (path + query, as on the request line): the path
/// stays percent-encoded as the client sent it (decoding "%2F" would change which resource the
/// upstream sees), dot segments resolved, joined with @p base's path; the query kept. On a target that
/// is not a path, a malformed escape or a path climbing above the API root: false and @p error says
/// why, fit for the client, and @p errorCode is the error code for it ("bad_path" or "bad_request").
bool mapTarget(const QUrl &base, const QByteArray &target, const QStringList &stripPrefixes, QUrl *url,
               QString *error, QString *errorCode);

/// The URL of the upstream's model list (GET), where a key can be checked without spending tokens.
QUrl modelsUrl(const QUrl &base, const QStringList &stripPrefixes = {});

} // namespace keyrelay::UpstreamPath
