#include "upstreampath.h"

#include <cctype>

namespace keyrelay::UpstreamPath {

namespace {
QString decodedDots(const QString &segment)
{
    QString text = segment;
    text.replace(QLatin1String("%2e"), QLatin1String("."), Qt::CaseInsensitive);
    return text;
}
} // namespace

QString join(const QString &basePath, const QString &clientPath, const QStringList &stripPrefixes)
{
    QString path = clientPath;
    for (const QString &prefix : stripPrefixes) {
        if (path == prefix) {
            path = QStringLiteral("/");
            break;
        }
        if (path.startsWith(prefix + QLatin1Char('/'))) {
            path = path.mid(prefix.size());
            break;
        }
    }
    while (path.startsWith(QLatin1String("/v1/v1/")) || path == QLatin1String("/v1/v1"))
        path.remove(0, 3);
    QString base = basePath;
    while (base.endsWith(QLatin1Char('/')))
        base.chop(1);
    // A base URL pasted with its version ("https://host/v1") and a client that adds "/v1" itself.
    if (base.endsWith(QLatin1String("/v1"))
        && (path.startsWith(QLatin1String("/v1/")) || path == QLatin1String("/v1")))
        path.remove(0, 3);
    return base + path;
}

bool resolveDotSegments(const QString &path, QString *resolved)
{
    if (!path.startsWith(QLatin1Char('/')))
        return false;
    // The usual path ("/v1/chat/completions") has nothing to resolve or check.
    if (!path.contains(QLatin1Char('.')) && !path.contains(QLatin1Char('%'))
        && !path.contains(QLatin1Char('\\'))) {
        *resolved = path;
        return true;
    }
    // A "%" must start an escape of two hex digits: QUrl would otherwise re-encode every "%" of the
    // whole path, the configured base included.
    for (qsizetype i = path.indexOf(QLatin1Char('%')); i >= 0; i = path.indexOf(QLatin1Char('%'), i + 1)) {
        if (i + 2 >= path.size() || !isxdigit(path.at(i + 1).unicode()) || !isxdigit(path.at(i + 2).unicode())
            || path.at(i + 1).unicode() > 0x7f || path.at(i + 2).unicode() > 0x7f)
            return false;
    }
    const QStringList segments = path.mid(1).split(QLatin1Char('/'));
    QStringList output;
    for (qsizetype i = 0; i < segments.size(); ++i) {
        const QString &segment = segments.at(i);
        const QString dots = decodedDots(segment);
        const bool last = i == segments.size() - 1;
        if (dots == QLatin1String(".")) {
            if (last)
                output.append(QString()); // "/a/." -> "/a/"
            continue;
        }
        if (dots == QLatin1String("..")) {
            if (output.isEmpty())
                return false; // above the root, i.e. above the upstream base path
            output.removeLast();
            if (last)
                output.append(QString());
            continue;
        }
        // "..%2f", "..\" and friends: an upstream that decodes them would climb.
        QString slashed = dots;
        slashed.replace(QLatin1String("%2f"), QLatin1String("/"), Qt::CaseInsensitive);
        slashed.replace(QLatin1String("%5c"), QLatin1String("/"), Qt::CaseInsensitive);
        slashed.replace(QLatin1Char('\\'), QLatin1Char('/'));
        if (slashed != dots && slashed.split(QLatin1Char('/')).contains(QLatin1String("..")))
            return false;
        output.append(segment);
    }
    *resolved = QLatin1Char('/') + output.join(QLatin1Char('/'));
    return true;
}

bool mapTarget(const QUrl &base, const QByteArray &target, const QStringList &stripPrefixes, QUrl *url,
               QString *error, QString *errorCode)
{
    *errorCode = QStringLiteral("bad_request");
    if (!target.startsWith('/')) {
        *error = QStringLiteral("request target must be a path");
        return false;
    }
    const qsizetype queryAt = target.indexOf('?');
    QString clientPath;
    if (!resolveDotSegments(QString::fromUtf8(queryAt < 0 ? target : target.left(queryAt)), &clientPath)) {
        *error = QStringLiteral(
            "request path is malformed (a bad %-escape) or climbs above the API root (\"..\")");
        *errorCode = QStringLiteral("bad_path");
        return false;
    }
    QUrl result = base;
    result.setPath(join(base.path(QUrl::FullyEncoded), clientPath, stripPrefixes), QUrl::TolerantMode);
    if (queryAt >= 0)
        result.setQuery(QString::fromUtf8(target.mid(queryAt + 1)), QUrl::StrictMode);
    else
        result.setQuery(QString());
    result.setFragment(QString());
    if (!result.isValid()) {
        *error = QStringLiteral("request path is not a valid URL path");
        return false;
    }
    *url = result;
    return true;
}

QUrl modelsUrl(const QUrl &base, const QStringList &stripPrefixes)
{
    QUrl url = base;
    url.setPath(join(base.path(QUrl::FullyEncoded), QStringLiteral("/v1/models"), stripPrefixes),
                QUrl::TolerantMode);
    url.setQuery(QString());
    url.setFragment(QString());
    return url;
}

} // namespace keyrelay::UpstreamPath
