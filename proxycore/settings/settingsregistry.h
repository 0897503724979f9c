// One typed registry of every persistent setting: name, default, validation, change signal.
#pragma once

#include "proxyconfig.h"

#include <QObject>
#include <QSettings>
#include <QStringList>
#include <QVariant>

#include <array>
#include <functional>
#include <memory>

namespace keyrelay {

enum class Setting {
    ListenHost,
    ListenPort,
    AllowRemoteClients,
    Upstream,
    UpstreamProxy,
    ReorderEnabled,
    ReorderThreshold,
    ReorderDepth,
    StripPrefixes,
    ConnectTimeoutSec,
    IdleTimeoutSec,
    MaxBodyMiB,
    HeadTimeoutSec,
    MaxConnections,
    RecheckInvalidSec,
    RecheckExhaustedSec,
    MaxAttempts,
    MaxConcurrentPerKey,
    RequestStreamUsage,
    UpstreamHttp2,
    AllowedOrigins,
    AllowAnyWebsite,
    ClientToken,
    AllowedHosts,
    StartMinimized,
    StartAtLogin,
    Count
};

/// A value in the settings file that was not used (not valid for its setting).
struct IgnoredSetting
{
    QString name; ///< the setting, "proxy/listenPort"
    int line = 0; ///< 1-based line of the file where it was written; 0 when it could not be found
    QString value; ///< the value in the file, as it may be shown (never a credential)
    QString kept; ///< the value used instead
    QString why; ///< what is wrong with it, when the setting can say more than "not valid"; may be empty
};

/// Everything about one setting, in one row of the registry's table: its name in the file, its default,
/// its validation, and where it lives in ProxyConfig (whose member initialisers are the defaults of the
/// proxy's settings). Adding a setting is one Setting value, one row, and its use.
struct SettingSpec
{
    Setting id;
    const char *name; ///< QSettings key, e.g. "proxy/listenPort"
    QVariant defaultValue; ///< for a ProxyConfig setting: read from a default-constructed ProxyConfig
    /// Checks (and may normalise) a value read from the file or set by the UI.
    std::function<bool(QVariant &value)> validate;
    /// The setting's value in a ProxyConfig; null for settings of the tray app alone (ui/...).
    std::function<QVariant(const ProxyConfig &config)> read;
    /// Stores a valid value into a ProxyConfig; null when read is.
    std::function<void(ProxyConfig &config, const QVariant &value)> write;
};

/// Reads and writes the settings file (the GUI's QSettings, or an INI file given with --config).
/// A hand-edited or corrupt file never stops the app: bad values fall back to their defaults, the
/// problems are reported by problems() (each ignored value also by ignoredSettings(), with its line), and
/// the original file is kept as a timestamped owner-only copy (damagedCopy()) that later starts never
/// replace.
class SettingsRegistry : public QObject
{
    Q_OBJECT
public:
    /// 2: CORS by origin allow-list (security/allowedOrigins) instead of security/corsAllowOrigin.
    static constexpr int CurrentVersion = 2;

    /// Takes ownership of @p storage.
    explicit SettingsRegistry(std::unique_ptr<QSettings> storage, QObject *parent = nullptr);
    /// An INI file at @p path.
    static std::unique_ptr<SettingsRegistry> openIni(const QString &path);
    ~SettingsRegistry() override;

    static const SettingSpec &spec(Setting setting);
    static QString name(Setting setting);

    QVariant value(Setting setting) const;
    /// Validates and stores. Returns false (and stores nothing) for an invalid value. Emits
    /// changed() only when the stored value really changes.
    bool setValue(Setting setting, const QVariant &value);
    void resetToDefault(Setting setting);

    /// Problems found while loading (bad values replaced by defaults, unreadable file...).
    QStringList problems() const { return m_problems; }
    /// The values of the file that were ignored (each is also one of problems()).
    QList<IgnoredSetting> ignoredSettings() const { return m_ignored; }
    /// The problems that are about the whole file (unreadable, malformed, written by a newer version).
    QStringList fileProblems() const { return m_fileProblems; }
    /// The copy of the file kept because it had problems ("<file>.damaged-<yyyyMMdd-HHmmss>"), or "".
    /// An identical copy from an earlier start is reused instead of making another one.
    QString damagedCopy() const { return m_damagedCopy; }
    int fileVersion() const { return m_fileVersion; }
    QString fileName() const;
    /// Writes pending changes; returns false if the file could not be written.
    bool sync();

    ProxyConfig proxyConfig() const;
    void setProxyConfig(const ProxyConfig &config);

    /// [providers] order and the [provider.<id>] groups (empty: the single [proxy] upstream).
    QList<ProviderConfig> providers() const { return m_providers; }
    /// Stores @p providers (not validated here: see validateProviders()); emits providersChanged().
    void setProviders(const QList<ProviderConfig> &providers);

Q_SIGNALS:
    void changed(keyrelay::Setting setting, const QVariant &value);
    void providersChanged();

private:
    void load();
    void migrate();

    std::unique_ptr<QSettings> m_storage;
    std::array<QVariant, size_t(Setting::Count)> m_values;
    QList<ProviderConfig> m_providers;
    QStringList m_problems;
    QList<IgnoredSetting> m_ignored;
    QStringList m_fileProblems;
    QString m_damagedCopy;
    int m_fileVersion = 0;
};

} // namespace keyrelay
