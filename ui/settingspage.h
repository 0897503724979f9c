// The "Settings" page: edits the SettingsRegistry and applies it to the running proxy. Edits are pending
// ("Unsaved changes") until Apply; Revert drops them.
#pragma once

#include "applybar.h"
#include "proxyconfig.h"

#include <QVariantList>
#include <QWidget>

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;

namespace keyrelay {

class AutostartManager;
class ProxyCredentials;
class ProxyService;
class SettingsRegistry;

class SettingsPage : public QWidget
{
    Q_OBJECT
public:
    /// @p autostart may be null (the option is then hidden).
    SettingsPage(SettingsRegistry *settings, ProxyService *service, AutostartManager *autostart,
                 QWidget *parent = nullptr);

    /// From now on the proxy password is shown from, and saved to, @p credentials instead of the settings
    /// file. May be null (the password then stays in the proxy URL of the settings, as typed).
    void setProxyCredentials(ProxyCredentials *credentials);

    /// Fills the form from the registry (drops unapplied edits).
    void revert();
    /// Validates the form, stores it and applies it to the proxy. Returns false and shows why on failure.
    bool apply();
    /// The form differs from what is stored (edited, not applied yet).
    bool hasPendingChanges() const { return m_bar->isPending(); }
    /// Before leaving the page or closing the window: with pending changes, asks whether to apply or
    /// discard them. Returns false when the user stays (Cancel, or applying failed before anything was
    /// stored); true without asking when nothing is pending.
    bool confirmDiscardOrApply(QWidget *parent);
    /// The "Unsaved changes" text while changes are pending; empty otherwise.
    QString pendingText() const;

    /// The upstreamProxy setting string for the form's proxy fields.
    QString composedUpstreamProxy() const;
    /// "system, user, assistant, …" before and after the rewrite, for the current form values.
    QString previewBefore() const;
    QString previewAfter() const;
    QString errorText() const;

    QLineEdit *listenHostEdit() const { return m_listenHost; }
    QSpinBox *listenPortSpin() const { return m_listenPort; }
    QLineEdit *upstreamEdit() const { return m_upstream; }
    QComboBox *proxyTypeCombo() const { return m_proxyType; }
    QLineEdit *proxyHostEdit() const { return m_proxyHost; }
    QSpinBox *proxyPortSpin() const { return m_proxyPort; }
    QLineEdit *proxyUserEdit() const { return m_proxyUser; }
    QLineEdit *proxyPasswordEdit() const { return m_proxyPassword; }
    QCheckBox *reorderCheck() const { return m_reorder; }
    QSpinBox *thresholdSpin() const { return m_threshold; }
    QSpinBox *depthSpin() const { return m_depth; }
    QSpinBox *recheckInvalidSpin() const { return m_recheckInvalid; }
    QSpinBox *maxPerKeySpin() const { return m_maxPerKey; }
    QCheckBox *streamUsageCheck() const { return m_streamUsage; }
    QLineEdit *stripPrefixesEdit() const { return m_stripPrefixes; }
    QSpinBox *connectTimeoutSpin() const { return m_connectTimeout; }
    QSpinBox *idleTimeoutSpin() const { return m_idleTimeout; }
    QCheckBox *startMinimizedCheck() const { return m_startMinimized; }
    QCheckBox *startAtLoginCheck() const { return m_startAtLogin; }
    QLineEdit *allowedOriginsEdit() const { return m_allowedOrigins; }
    QCheckBox *allowAnyWebsiteCheck() const { return m_allowAnyWebsite; }
    QLabel *allowAnyWebsiteWarning() const { return m_allowAnyWarning; }
    QLineEdit *clientTokenEdit() const { return m_clientToken; }
    QPushButton *generateTokenButton() const { return m_generateToken; }
    QPushButton *copyTokenButton() const { return m_copyToken; }
    QLineEdit *allowedHostsEdit() const { return m_allowedHosts; }

    /// "Allow this website" from the log: adds @p origin to security/allowedOrigins and applies it at
    /// once (other unapplied edits on the page stay as they are). Returns false with a message if
    /// @p origin is not a website origin.
    bool allowWebsite(const QString &origin, QString *error = nullptr);
    QPushButton *applyButton() const { return m_bar->applyButton(); }
    QPushButton *revertButton() const { return m_bar->revertButton(); }
    /// The message beside Apply ("Settings applied.", or why not); empty when none is shown.
    QString messageText() const;

Q_SIGNALS:
    void applied();
    /// Applying failed (bad value, port in use...); @p error is safe to show.
    void applyFailed(const QString &error);

private:
    enum ProxyType { ProxyNone, ProxySystem, ProxyHttp, ProxySocks5 };
    bool formToConfig(ProxyConfig *config, QString *error) const;
    void updatePreview();
    void updateProxyFields();
    void setMessage(const QString &text, bool error);
    /// Tracks every input: pending state, wheel only with focus, Tab order, accessible names.
    void setUpFields();
    QVariantList formValues() const;
    /// Compares the form with what is stored; shows the pending state.
    void updatePending();
    /// The form as it is now is what is stored.
    void markClean();
    static QString rolesOf(const QByteArray &body);
    QByteArray sampleBody() const;

    SettingsRegistry *m_settings;
    ProxyService *m_service;
    AutostartManager *m_autostart;
    ProxyCredentials *m_credentials = nullptr;

    QLineEdit *m_listenHost;
    QSpinBox *m_listenPort;
    QLineEdit *m_upstream;
    QComboBox *m_proxyType;
    QLineEdit *m_proxyHost;
    QSpinBox *m_proxyPort;
    QLineEdit *m_proxyUser;
    QLineEdit *m_proxyPassword;
    QCheckBox *m_reorder;
    QSpinBox *m_threshold;
    QSpinBox *m_depth;
    QSpinBox *m_recheckInvalid;
    QSpinBox *m_maxPerKey;
    QCheckBox *m_streamUsage;
    QLabel *m_previewBefore;
    QLabel *m_previewAfter;
    QLineEdit *m_stripPrefixes;
    QSpinBox *m_connectTimeout;
    QSpinBox *m_idleTimeout;
    QCheckBox *m_startMinimized;
    QCheckBox *m_startAtLogin;
    QLineEdit *m_allowedOrigins;
    QCheckBox *m_allowAnyWebsite;
    QLabel *m_allowAnyWarning;
    QLineEdit *m_clientToken;
    QPushButton *m_generateToken;
    QPushButton *m_copyToken;
    QLineEdit *m_allowedHosts;
    ApplyBar *m_bar;
    QList<QWidget *> m_fields; ///< every input, in visual (and Tab) order
    QVariantList m_cleanValues; ///< formValues() as stored
    bool m_loading = false; ///< revert() is filling the form
};

} // namespace keyrelay
