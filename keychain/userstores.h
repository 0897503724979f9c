// Opens the user's key list and secrets: in the system keychain when there is one, else in owner-only
// files next to the settings, moving existing files into the keychain on the way.
#pragma once

#include "keychain.h"
#include "keystore.h"
#include "secretstore.h"
#include "verifiedstores.h"

#include <QStringList>

#include <memory>

namespace keyrelay {

/// Where the user's keys and secrets live for this run, and why.
struct UserStores
{
    enum class Reason {
        Keychain, ///< in the system keychain
        ForcedFile, ///< files, because KEYRELAY_KEYSTORE=file
        NoKeychain, ///< files, because no keychain answered (see detail)
        MigrationFailed, ///< files, because moving them into the keychain failed (see detail); nothing lost
    };

    /// What happens to later saves: a keychain that refuses one (the keys or the password then go to the
    /// files at once), keys that could not be saved anywhere. Declared first: the stores below use it.
    std::shared_ptr<StorageEvents> events = std::make_shared<StorageEvents>();
    /// Both stores read every save back; when the keychain refuses one, they write the files instead.
    std::unique_ptr<KeyStore> keys;
    std::unique_ptr<SecretStore> secrets;
    Reason reason = Reason::NoKeychain;
    QString keysFile; ///< keys.json next to the settings (where the keys are unless in the keychain)
    QString detail; ///< the keychain's error for NoKeychain and MigrationFailed
    QStringList messages; ///< what was done, e.g. keys moved into the keychain
    QStringList problems; ///< what went wrong without losing anything, to show prominently
    QString keychainService; ///< the keychain's service name and timeout, for the providers' key stores
    int keychainTimeoutMs = Keychain::DefaultTimeoutMs;

    bool inKeychain() const { return reason == Reason::Keychain; }

    /// The store of provider @p providerId's own keys (issue 17), kept like the main list: keychain entry
    /// "keys/<id>" when the keys are in the keychain, else the owner-only file "keys-<id>.json" next to
    /// keysFile; the same read-back and fall-back to the file. A file left from a run without a keychain is
    /// moved into it first (on failure the file stays and is used; @p problem says why). The main list
    /// (entry "keys", keys.json) is never a provider's. @p providerId must pass ProviderConfig::isValidId.
    std::unique_ptr<VerifiedKeyStore> providerKeys(const QString &providerId,
                                                   QString *problem = nullptr) const;
    /// "keys-<id>.json" next to @p keysFile.
    static QString providerKeysFile(const QString &keysFile, const QString &providerId);
    /// One English sentence: where the keys are and why (for logs and the headless mode; the GUI has its
    /// own translated text).
    QString notice() const;
};

struct UserStoreOptions
{
    QString service = Keychain::defaultService();
    int timeoutMs = Keychain::DefaultTimeoutMs;
};

/// The environment variable that forces the files: KEYRELAY_KEYSTORE=file ("auto", the default, uses the
/// keychain when one answers).
inline const char *keyStoreEnvironmentVariable()
{
    return "KEYRELAY_KEYSTORE";
}

/// Probes the keychain with a read of the key list (an answer, even "not found", means it is there; no
/// backend, a D-Bus error or no answer within the timeout means it is not), then returns the keychain
/// stores, or the owner-only files keys.json and secrets.json next to @p settingsFile. With a keychain,
/// existing files are moved into it: written, read back and compared, and only then removed; on any
/// failure the files stay and are used. Never blocks longer than a few keychain timeouts.
///
/// The tray app (ui/trayapp.cpp) and `keyrelay --headless` over the same settings file use it alike:
///     UserStores stores = openUserStores(settings->fileName());   // report stores.notice(), .problems
///     stores.keys->load(&keys, &error);
///     ProxyCredentials proxy(stores.secrets.get());
///     proxy.load(&error);                       // then proxy.migrate(settings, &moved, &error) to move a
///     proxy.complete(&config);                  // password out of the settings file, and run with config
UserStores openUserStores(const QString &settingsFile, const UserStoreOptions &options = {});

/// openUserStores() for callers that need only the keys; @p notice gets UserStores::notice() followed by
/// any problems.
std::unique_ptr<KeyStore> openUserKeyStore(const QString &settingsFile, QString *notice);

} // namespace keyrelay
