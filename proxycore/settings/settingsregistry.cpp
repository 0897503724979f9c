#include "settingsregistry.h"

#include "accesspolicy.h"
#include "logging.h"

#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QHash>

namespace keyrelay {

namespace {

std::function<bool(QVariant &)> intRange(int low, int high)
{
    return [low, high](QVariant &value) {
        bool ok = false;
        const int number = value.toString().trimmed().toInt(&ok);
        if (!ok || number < low || number > high)
            return false;
        value = number;
        return true;
    };
}

bool toBool(QVariant &value)
{
    const QString text = value.toString().trimmed().toLower();
    if (text == QLatin1String("true") || text == QLatin1String("1") || text == QLatin1String("yes")
        || text == QLatin1String("on")) {
        value = true;
        return true;
    }
    if (text == QLatin1String("false") || text == QLatin1String("0") || text == QLatin1String("no")
        || text == QLatin1String("off")) {
        value = false;
        return true;
    }
    return false;
}

/// A comma-separated list (or a QStringList) whose trimmed, non-empty entries all pass @p entryOk.
std::function<bool(QVariant &)> stringList(std::function<bool(const QString &)> entryOk)
{
    return [entryOk](QVariant &value) {
        QStringList raw = value.toStringList();
        if (value.typeId() == QMetaType::QString)
            raw = value.toString().split(QLatin1Char(','), Qt::SkipEmptyParts);
        QStringList cleaned;
        for (const QString &entry : std::as_const(raw)) {
            const QString trimmed = entry.trimmed();
            if (trimmed.isEmpty())
                continue;
            if (!entryOk(trimmed))
                return false;
            if (!cleaned.contains(trimmed))
                cleaned.append(trimmed);
        }
        value = cleaned;
        return true;
    };
}

QString displayText(const QVariant &value)
{
    if (value.typeId() == QMetaType::QStringList)
        return value.toStringList().join(QLatin1Char(','));
    return value.toString();
}

/// A setting's value as a warning may show it: never a credential. The client token is not shown at all,
/// URLs lose their user info.
QString displaySafely(Setting setting, const QVariant &value)
{
    const QString text = displayText(value);
    if (setting == Setting::ClientToken)
        return QStringLiteral("(hidden, %1 characters)").arg(text.size());
    if (setting == Setting::UpstreamProxy || setting == Setting::Upstream)
        return ProxyConfig::withoutUserInfo(text).left(80);
    return text.left(80);
}

/// Why a value of @p setting was refused, when the setting can say more than "not valid".
QString whyInvalid(Setting setting, const QVariant &value)
{
    QString error;
    if (setting == Setting::UpstreamProxy) {
        QNetworkProxy proxy;
        bool useSystem = false;
        ProxyConfig::parseUpstreamProxy(value.toString(), &proxy, &useSystem, &error);
    } else if (setting == Setting::Upstream) {
        QUrl url;
        ProxyConfig::parseUpstream(value.toString(), &url, &error);
    }
    return error;
}

const QFileDevice::Permissions OwnerOnly = QFileDevice::ReadOwner | QFileDevice::WriteOwner;

/// Keeps @p file aside as "<file>.damaged-<yyyyMMdd-HHmmss>", readable by its owner only (the settings may
/// hold the client token or a proxy password). A copy with the same content from an earlier start is
/// reused, so a file that stays damaged does not pile up copies; no copy is ever overwritten. Returns the
/// copy's path, or "" when none could be made.
QString keepDamagedCopy(const QString &file)
{
    QFile source(file);
    if (!source.open(QIODevice::ReadOnly))
        return QString();
    const QByteArray content = source.readAll();
    const QFileInfo info(file);
    const QDir folder = info.absoluteDir();
    const QString prefix = info.fileName() + QStringLiteral(".damaged-");
    const QStringList earlier = folder.entryList({ prefix + QLatin1Char('*') }, QDir::Files, QDir::Name);
    for (const QString &name : earlier) {
        QFile copy(folder.filePath(name));
        if (copy.size() == content.size() && copy.open(QIODevice::ReadOnly) && copy.readAll() == content)
            return copy.fileName();
    }
    const QString stamp = QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-HHmmss"));
    QString path = folder.filePath(prefix + stamp);
    for (int n = 2; QFile::exists(path); ++n)
        path = folder.filePath(prefix + stamp + QLatin1Char('-') + QString::number(n));
    QFile target(path);
    if (!target.open(QIODevice::WriteOnly | QIODevice::NewOnly, OwnerOnly))
        return QString();
    const bool written = target.write(content) == content.size() && target.flush();
    target.close();
    if (!written || !QFile::setPermissions(path, OwnerOnly)) {
        QFile::remove(path);
        return QString();
    }
    return path;
}

/// The line (1-based) where each "group/key" is written in the INI text of @p file; the last one counts,
/// as in QSettings. QSettings does not say where a value came from, so the text is read here.
QHash<QString, int> linesOfKeys(const QString &file)
{
    QHash<QString, int> lines;
    QFile source(file);
    if (!source.open(QIODevice::ReadOnly) || source.size() > qint64(4) * 1024 * 1024)
        return lines;
    QString group;
    int number = 0;
    while (!source.atEnd()) {
        ++number;
        const QString line = QString::fromUtf8(source.readLine()).trimmed();
        if (line.isEmpty() || line.startsWith(QLatin1Char(';')) || line.startsWith(QLatin1Char('#')))
            continue;
        if (line.startsWith(QLatin1Char('[')) && line.endsWith(QLatin1Char(']'))) {
            group = line.mid(1, line.size() - 2).trimmed();
            if (group.compare(QLatin1String("General"), Qt::CaseInsensitive) == 0)
                group.clear();
            continue;
        }
        const qsizetype equals = line.indexOf(QLatin1Char('='));
        if (equals <= 0)
            continue;
        QString key = line.left(equals).trimmed();
        key.replace(QLatin1Char('\\'), QLatin1Char('/'));
        lines.insert(group.isEmpty() ? key : group + QLatin1Char('/') + key, number);
    }
    return lines;
}

/// What QSettings is given to write: an empty list as an empty value ("allowedOrigins="), not as
/// "@Invalid()", which is what QSettings writes for an empty QStringList.
QVariant storedForm(const QVariant &value)
{
    if (value.typeId() == QMetaType::QStringList && value.toStringList().isEmpty())
        return QString();
    return value;
}

/// A row for a ProxyConfig member whose type QVariant holds as is (QString, int, bool, QStringList).
template <typename T>
SettingSpec field(Setting id, const char *name, T ProxyConfig::*member, std::function<bool(QVariant &)> validate)
{
    return { id, name, QVariant::fromValue(ProxyConfig().*member), std::move(validate),
             [member](const ProxyConfig &config) { return QVariant::fromValue(config.*member); },
             [member](ProxyConfig &config, const QVariant &value) { config.*member = value.value<T>(); } };
}

/// A row whose file form differs from its ProxyConfig member (a port, a URL, bytes written as MiB).
SettingSpec converted(Setting id, const char *name, std::function<QVariant(const ProxyConfig &)> read,
                      std::function<void(ProxyConfig &, const QVariant &)> write,
                      std::function<bool(QVariant &)> validate)
{
    return { id, name, read(ProxyConfig()), std::move(validate), std::move(read), std::move(write) };
}

/// A setting of the tray app alone: not part of ProxyConfig.
SettingSpec uiOnly(Setting id, const char *name, QVariant defaultValue, std::function<bool(QVariant &)> validate)
{
    return { id, name, std::move(defaultValue), std::move(validate), nullptr, nullptr };
}

const std::array<SettingSpec, size_t(Setting::Count)> &specs()
{
    using C = ProxyConfig;
    static const std::array<SettingSpec, size_t(Setting::Count)> table { {
        field(Setting::ListenHost, "proxy/listenHost", &C::listenHost,
              [](QVariant &value) {
                  const QString host = value.toString().trimmed();
                  value = host;
                  return host.compare(QLatin1String("localhost"), Qt::CaseInsensitive) == 0
                      || !QHostAddress(host).isNull();
              }),
        converted(
            Setting::ListenPort, "proxy/listenPort", [](const C &c) { return QVariant(int(c.listenPort)); },
            [](C &c, const QVariant &v) { c.listenPort = quint16(v.toInt()); }, intRange(0, 65535)),
        field(Setting::AllowRemoteClients, "security/allowRemoteClients", &C::allowRemoteClients, toBool),
        converted(
            Setting::Upstream, "proxy/upstream", [](const C &c) { return QVariant(c.upstream.toString()); },
            [](C &c, const QVariant &v) { c.upstream = QUrl(v.toString()); },
            [](QVariant &value) {
                QUrl url;
                QString error;
                if (!ProxyConfig::parseUpstream(value.toString(), &url, &error))
                    return false;
                value = url.toString();
                return true;
            }),
        field(Setting::UpstreamProxy, "proxy/upstreamProxy", &C::upstreamProxy,
              [](QVariant &value) {
                  QNetworkProxy proxy;
                  bool useSystem = false;
                  QString error;
                  value = value.toString().trimmed();
                  return ProxyConfig::parseUpstreamProxy(value.toString(), &proxy, &useSystem, &error);
              }),
        field(Setting::ReorderEnabled, "rewrite/reorderSystemMessage", &C::reorderEnabled, toBool),
        field(Setting::ReorderThreshold, "rewrite/threshold", &C::reorderThreshold, intRange(1, 1000)),
        field(Setting::ReorderDepth, "rewrite/depth", &C::reorderDepth, intRange(1, 1000)),
        field(Setting::StripPrefixes, "proxy/stripPrefixes", &C::stripPrefixes,
              [](QVariant &value) {
                  QStringList prefixes = value.toStringList();
                  if (value.typeId() == QMetaType::QString)
                      prefixes = value.toString().split(QLatin1Char(','), Qt::SkipEmptyParts);
                  QStringList cleaned;
                  if (!ProxyConfig::normalizePathPrefixes(prefixes, false, &cleaned))
                      return false;
                  value = cleaned;
                  return true;
              }),
        field(Setting::ConnectTimeoutSec, "proxy/connectTimeoutSec", &C::connectTimeoutSec, intRange(1, 3600)),
        field(Setting::IdleTimeoutSec, "proxy/idleTimeoutSec", &C::idleTimeoutSec, intRange(1, 86400)),
        converted(
            Setting::MaxBodyMiB, "proxy/maxBodyMiB",
            [](const C &c) { return QVariant(int(qMax<qint64>(1, c.maxBodyBytes / (1024 * 1024)))); },
            [](C &c, const QVariant &v) { c.maxBodyBytes = qint64(v.toInt()) * 1024 * 1024; }, intRange(1, 1024)),
        field(Setting::HeadTimeoutSec, "proxy/headTimeoutSec", &C::headTimeoutSec, intRange(1, 3600)),
        field(Setting::MaxConnections, "proxy/maxConnections", &C::maxConnections, intRange(1, 1000000)),
        field(Setting::RecheckInvalidSec, "health/recheckInvalidSec", &C::recheckInvalidSec,
              intRange(1, 365 * 86400)),
        field(Setting::RecheckExhaustedSec, "health/recheckExhaustedSec", &C::recheckExhaustedSec,
              intRange(1, 365 * 86400)),
        field(Setting::MaxAttempts, "health/maxAttempts", &C::maxAttempts, intRange(1, 20)),
        field(Setting::MaxConcurrentPerKey, "health/maxConcurrentPerKey", &C::maxConcurrentPerKey,
              intRange(0, 100000)),
        field(Setting::RequestStreamUsage, "usage/includeStreamUsage", &C::requestStreamUsage, toBool),
        field(Setting::UpstreamHttp2, "proxy/upstreamHttp2", &C::upstreamHttp2, toBool),
        field(Setting::AllowedOrigins, "security/allowedOrigins", &C::allowedOrigins,
              stringList([](const QString &entry) { return AccessPolicy::isValidOriginEntry(entry); })),
        field(Setting::AllowAnyWebsite, "security/allowAnyWebsite", &C::allowAnyWebsite, toBool),
        field(Setting::ClientToken, "security/clientToken", &C::clientToken,
              [](QVariant &value) {
                  const QString token = value.toString().trimmed();
                  value = token;
                  // Sent by clients as a header value: printable ASCII without spaces, long enough to guess.
                  for (const QChar c : token) {
                      if (c.unicode() <= 0x20 || c.unicode() >= 0x7f)
                          return false;
                  }
                  return token.isEmpty() || token.size() >= 16;
              }),
        field(Setting::AllowedHosts, "security/allowedHosts", &C::allowedHosts,
              stringList([](const QString &entry) { return AccessPolicy::isValidHostEntry(entry); })),
        uiOnly(Setting::StartMinimized, "ui/startMinimized", false, toBool),
        uiOnly(Setting::StartAtLogin, "ui/startAtLogin", false, toBool),
    } };
    // Rows are in the order of the enum: spec() indexes by it.
    for (size_t i = 0; i < table.size(); ++i)
        Q_ASSERT(size_t(table.at(i).id) == i);
    return table;
}

} // namespace

SettingsRegistry::SettingsRegistry(std::unique_ptr<QSettings> storage, QObject *parent)
    : QObject(parent), m_storage(std::move(storage))
{
    load();
}

std::unique_ptr<SettingsRegistry> SettingsRegistry::openIni(const QString &path)
{
    return std::make_unique<SettingsRegistry>(std::make_unique<QSettings>(path, QSettings::IniFormat));
}

SettingsRegistry::~SettingsRegistry()
{
    m_storage->sync();
}

const SettingSpec &SettingsRegistry::spec(Setting setting)
{
    return specs().at(size_t(setting));
}

QString SettingsRegistry::name(Setting setting)
{
    return QString::fromLatin1(spec(setting).name);
}

QString SettingsRegistry::fileName() const
{
    return m_storage->fileName();
}

void SettingsRegistry::load()
{
    m_problems.clear();
    m_ignored.clear();
    m_fileProblems.clear();
    m_damagedCopy.clear();
    const QString file = m_storage->fileName();
    const bool fileExists = QFileInfo::exists(file);
    if (fileExists && !QFileInfo(file).isReadable())
        m_fileProblems << QStringLiteral("settings file %1 is not readable; using defaults").arg(file);
    if (m_storage->status() == QSettings::FormatError)
        m_fileProblems
            << QStringLiteral("settings file %1 is malformed; unreadable parts use defaults").arg(file);
    m_problems = m_fileProblems;

    QHash<QString, int> lines;
    bool linesRead = false;
    for (const SettingSpec &entry : specs()) {
        QVariant value = entry.defaultValue;
        if (m_storage->contains(QLatin1String(entry.name))) {
            QVariant stored = m_storage->value(QLatin1String(entry.name));
            const QVariant original = stored;
            if (entry.validate(stored)) {
                value = stored;
            } else {
                if (!linesRead) {
                    lines = linesOfKeys(file);
                    linesRead = true;
                }
                IgnoredSetting ignored;
                ignored.name = QLatin1String(entry.name);
                ignored.line = lines.value(ignored.name);
                ignored.value = displaySafely(entry.id, original);
                ignored.kept = displayText(entry.defaultValue);
                ignored.why = whyInvalid(entry.id, original);
                m_ignored.append(ignored);
                m_problems << QStringLiteral("%1setting %2 = \"%3\" is not valid%4; using the default \"%5\"")
                                  .arg(ignored.line > 0 ? QStringLiteral("line %1: ").arg(ignored.line)
                                                        : QString(),
                                       ignored.name, ignored.value,
                                       ignored.why.isEmpty() ? QString()
                                                             : QStringLiteral(" (%1)").arg(ignored.why),
                                       ignored.kept);
            }
        }
        m_values.at(size_t(entry.id)) = value;
    }

    // [providers] order and [provider.<id>]: a list of groups, read as a whole.
    QStringList providerProblems;
    m_providers = readProviders(*m_storage, &providerProblems);
    m_problems << providerProblems;

    bool versionOk = false;
    m_fileVersion = m_storage->value(QStringLiteral("meta/settingsVersion")).toInt(&versionOk);
    if (!versionOk)
        m_fileVersion = 0;
    if (m_fileVersion > CurrentVersion) {
        const QString problem
            = QStringLiteral("settings file %1 was written by a newer KeyRelay (version %2)")
                  .arg(file)
                  .arg(m_fileVersion);
        m_fileProblems << problem;
        m_problems << problem;
    }
    migrate();

    if (!m_problems.isEmpty() && fileExists) {
        m_damagedCopy = keepDamagedCopy(file);
        if (!m_damagedCopy.isEmpty())
            m_problems << QStringLiteral("the original file was kept as %1").arg(m_damagedCopy);
    }
    for (const QString &problem : std::as_const(m_problems))
        qCWarning(lcSettings).noquote() << problem;
}

void SettingsRegistry::migrate()
{
    // Migrations from older versions, one step at a time.
    const QString oldCors = QStringLiteral("security/corsAllowOrigin");
    if (m_fileVersion < 2 && m_storage->contains(oldCors)) {
        // Version 1 sent "Access-Control-Allow-Origin: <corsAllowOrigin>" (default "*") to every
        // website. "*" becomes the new default policy, NOT "allow any website"; a specific origin the
        // user had set is kept as an allowed origin.
        const QString origin = m_storage->value(oldCors).toString().trimmed();
        m_storage->remove(oldCors);
        if (origin != QLatin1String("*") && AccessPolicy::isValidOriginEntry(origin)) {
            QStringList origins = value(Setting::AllowedOrigins).toStringList();
            if (!origins.contains(origin))
                origins.append(origin);
            setValue(Setting::AllowedOrigins, origins);
        }
        m_fileVersion = CurrentVersion;
        m_storage->setValue(QStringLiteral("meta/settingsVersion"), CurrentVersion);
        qCInfo(lcSettings).noquote() << "settings migrated to version" << CurrentVersion
                                     << "(CORS: origin allow-list)";
    }
}

QVariant SettingsRegistry::value(Setting setting) const
{
    return m_values.at(size_t(setting));
}

bool SettingsRegistry::setValue(Setting setting, const QVariant &value)
{
    const SettingSpec &entry = spec(setting);
    QVariant candidate = value;
    if (!entry.validate(candidate))
        return false;
    QVariant &current = m_values.at(size_t(setting));
    if (current == candidate && m_storage->contains(QLatin1String(entry.name)))
        return true;
    const bool changedValue = current != candidate;
    current = candidate;
    m_storage->setValue(QLatin1String(entry.name), storedForm(candidate));
    if (m_fileVersion < CurrentVersion) {
        m_fileVersion = CurrentVersion;
        m_storage->setValue(QStringLiteral("meta/settingsVersion"), CurrentVersion);
    }
    if (changedValue)
        Q_EMIT changed(setting, candidate);
    return true;
}

void SettingsRegistry::resetToDefault(Setting setting)
{
    setValue(setting, spec(setting).defaultValue);
}

bool SettingsRegistry::sync()
{
    m_storage->sync();
    return m_storage->status() == QSettings::NoError;
}

ProxyConfig SettingsRegistry::proxyConfig() const
{
    ProxyConfig config;
    for (const SettingSpec &entry : specs()) {
        if (entry.write)
            entry.write(config, value(entry.id));
    }
    config.providers = m_providers;
    return config;
}

void SettingsRegistry::setProxyConfig(const ProxyConfig &config)
{
    for (const SettingSpec &entry : specs()) {
        if (entry.read)
            setValue(entry.id, entry.read(config));
    }
    setProviders(config.providers);
}

void SettingsRegistry::setProviders(const QList<ProviderConfig> &providers)
{
    if (providers == m_providers)
        return;
    m_providers = providers;
    writeProviders(*m_storage, providers);
    Q_EMIT providersChanged();
}

} // namespace keyrelay
