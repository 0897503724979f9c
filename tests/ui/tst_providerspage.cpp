// The Providers page and the providers' own keys (issue 17): the list and its order, inline validation that
// never stores, Apply writing [providers] and [provider.<id>], the carry-over of the single upstream as
// "default" with its keys untouched, the Keys page's provider selector, the Test's model list, and the
// proxy routing each provider's requests with that provider's keys.
#include "keyspage.h"
#include "keystore.h"
#include "keytablemodel.h"
#include "keytester.h"
#include "mockupstream.h"
#include "providerkeys.h"
#include "providersmodel.h"
#include "providerspage.h"
#include "proxyclient.h"
#include "proxyservice.h"
#include "settingsregistry.h"
#include "userstores.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFile>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>

using namespace keyrelay;

namespace {
const QString MainKey = QStringLiteral("sk-main-AAAAAAAAAAAAAAAAAAAAAAAAAAAAaaaa");
const QString OtherKey = QStringLiteral("sk-other-BBBBBBBBBBBBBBBBBBBBBBBBBBBbbbb");

ProviderConfig preset(const QString &id)
{
    const QList<ProviderConfig> presets = ProviderConfig::presets();
    for (const ProviderConfig &config : presets) {
        if (config.id == id)
            return config;
    }
    return {};
}

QStringList secretsOf(const QList<ApiKey> &keys)
{
    QStringList secrets;
    for (const ApiKey &key : keys)
        secrets << key.secret;
    return secrets;
}

QByteArray modelList(const QStringList &ids)
{
    QByteArray body = "{\"object\":\"list\",\"data\":[";
    for (int i = 0; i < ids.size(); ++i)
        body += (i ? "," : "") + QByteArray("{\"id\":\"") + ids.at(i).toUtf8() + "\",\"object\":\"model\"}";
    return body + "]}";
}

/// Settings next to a main key list (keys.json) and the providers' files (keys-<id>.json), a proxy on an
/// ephemeral port, the main pool with MainKey.
struct Fixture
{
    QTemporaryDir dir;
    it::MockUpstream mainUpstream;
    std::unique_ptr<SettingsRegistry> settings;
    KeyPool pool;
    std::unique_ptr<FileKeyStore> store;
    std::unique_ptr<ProviderKeys> keys;
    std::unique_ptr<ProxyService> service;
    std::unique_ptr<ProvidersPage> page;

    bool setUp()
    {
        if (!dir.isValid() || !mainUpstream.listen())
            return false;
        mainUpstream.setHandler(
            [](const it::RecordedRequest &) { return it::MockResponse::json(200, chatCompletion()); });
        settings = SettingsRegistry::openIni(dir.filePath(QStringLiteral("KeyRelay.ini")));
        settings->setValue(Setting::ListenPort, 0);
        settings->setValue(Setting::Upstream, mainUpstream.url().toString());
        store = std::make_unique<FileKeyStore>(FileKeyStore::pathNextTo(settings->fileName()));
        pool.setKeys({ { MainKey, QStringLiteral("main"), true } });
        QString error;
        if (!store->save(pool.keys(), &error))
            return false;
        const QString keysFile = store->location();
        keys = std::make_unique<ProviderKeys>(&pool, store.get(), [keysFile](const QString &id, QString *) {
            return std::make_unique<FileKeyStore>(UserStores::providerKeysFile(keysFile, id));
        });
        service = std::make_unique<ProxyService>(&pool);
        page = std::make_unique<ProvidersPage>(settings.get(), service.get(), keys.get());
        page->setCarryOverPrompt([] { return false; });
        return service->start(settings->proxyConfig(), &error);
    }
    ~Fixture()
    {
        page.reset();
        if (service)
            service->stop();
    }
};
} // namespace

class TestProvidersPage : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void modelKeepsOrderIdsAndFallbacks()
    {
        ProvidersModel model;
        QCOMPARE(model.addProvider(preset(QStringLiteral("openai"))), 0);
        QCOMPARE(model.addProvider(preset(QStringLiteral("openai"))), 1);
        QCOMPARE(model.addProvider(preset(QStringLiteral("groq"))), 2);
        QCOMPARE(model.draft(0).id, QStringLiteral("openai"));
        QCOMPARE(model.draft(1).id, QStringLiteral("openai-2")); // unique, never a second "openai"
        QVERIFY(model.index(0).data().toString().contains(QLatin1String("default route")));
        QVERIFY(!model.index(1).data().toString().contains(QLatin1String("default route")));

        ProviderDraft groq = model.draft(2);
        groq.fallback = QStringLiteral("openai-2, openai");
        model.setDraft(2, groq);
        QCOMPARE(model.moveProvider(2, -1), 1);
        QCOMPARE(model.moveProvider(1, -1), 0);
        QCOMPARE(model.draft(0).id, QStringLiteral("groq")); // the new default
        QVERIFY(model.index(0).data().toString().contains(QLatin1String("default route")));
        QCOMPARE(model.moveProvider(0, -1), -1);
        QCOMPARE(model.moveProvider(2, +1), -1);

        model.removeProvider(2); // openai-2: nobody falls back to it any more
        QCOMPARE(model.draft(0).fallback, QStringLiteral("openai"));
        QList<ProviderConfig> providers;
        QStringList problems;
        QVERIFY2(model.toProviders(&providers, &problems), qPrintable(problems.join(QLatin1Char('\n'))));
        QCOMPARE(providers.size(), 2);
        QCOMPARE(providers.at(0).fallback, QStringList { QStringLiteral("openai") });
    }

    void problemsAreShownAndNothingIsStored_data()
    {
        QTest::addColumn<QString>("field");
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        QTest::newRow("id") << "id"
                            << "Open AI"
                            << "The id must be";
        QTest::newRow("duplicate id") << "id"
                                      << "deepseek"
                                      << "Another provider has the id";
        QTest::newRow("base URL") << "baseUrl"
                                  << "ftp://example.org"
                                  << "Base URL";
        QTest::newRow("no base URL") << "baseUrl"
                                     << ""
                                     << "Enter the base URL";
        QTest::newRow("alias") << "aliases"
                               << "fast"
                               << "Aliases";
        QTest::newRow("fallback") << "fallback"
                                  << "nowhere"
                                  << "is not a provider in the list";
        QTest::newRow("itself") << "fallback"
                                << "openai"
                                << "cannot fall back to itself";
        QTest::newRow("proxy") << "proxy"
                               << "gopher://x"
                               << "Network proxy";
    }

    void problemsAreShownAndNothingIsStored()
    {
        QFETCH(QString, field);
        QFETCH(QString, text);
        QFETCH(QString, expected);
        Fixture f;
        QVERIFY(f.setUp());
        f.page->addPreset(preset(QStringLiteral("deepseek")));
        f.page->addPreset(preset(QStringLiteral("openai")));
        QCOMPARE(f.page->selectedRow(), 1);
        QVERIFY(f.page->problemText().isEmpty());
        QLineEdit *edit = field == QLatin1String("id") ? f.page->idEdit()
            : field == QLatin1String("baseUrl")        ? f.page->baseUrlEdit()
            : field == QLatin1String("aliases")        ? f.page->aliasesEdit()
            : field == QLatin1String("fallback")       ? f.page->fallbackEdit()
                                                       : f.page->proxyEdit();
        edit->setText(text);
        QVERIFY2(f.page->problemText().contains(expected), qPrintable(f.page->problemText()));
        QVERIFY(f.page->hasPendingChanges());

        QSignalSpy failed(f.page.get(), &ProvidersPage::applyFailed);
        QVERIFY(!f.page->apply());
        QCOMPARE(failed.count(), 1);
        QVERIFY(f.page->messageText().contains(expected));
        QVERIFY(f.page->hasPendingChanges()); // the edits stay, to be fixed
        QVERIFY(f.settings->providers().isEmpty());
        f.settings->sync();
        QSettings ini(f.settings->fileName(), QSettings::IniFormat);
        QVERIFY(!ini.contains(QStringLiteral("providers/order")));
        QVERIFY(ini.childGroups().filter(QStringLiteral("provider.")).isEmpty());
        QVERIFY(f.service->config().providers.isEmpty());
    }

    void applyWritesTheGroupsAndTheProxyUsesThem()
    {
        Fixture f;
        QVERIFY(f.setUp());
        f.page->addPreset(preset(QStringLiteral("deepseek")));
        f.page->baseUrlEdit()->setText(f.mainUpstream.url().toString());
        f.page->modelsEdit()->setText(QStringLiteral("deepseek-*"));
        f.page->aliasesEdit()->setText(QStringLiteral("fast=deepseek-chat, think=deepseek-reasoner"));
        f.page->addPreset(preset(QStringLiteral("openrouter")));
        f.page->fallbackEdit()->setText(QStringLiteral("deepseek")); // a fallback of the same kind
        f.page->addPreset(preset(QStringLiteral("anthropic")));
        f.page->enabledCheck()->setChecked(false);
        QSignalSpy applied(f.page.get(), &ProvidersPage::applied);
        QVERIFY2(f.page->apply(), qPrintable(f.page->messageText()));
        QCOMPARE(applied.count(), 1);
        QVERIFY(!f.page->hasPendingChanges());

        QSettings ini(f.settings->fileName(), QSettings::IniFormat);
        QCOMPARE(ini.value(QStringLiteral("providers/order")).toString(),
                 QStringLiteral("deepseek, openrouter, anthropic"));
        QCOMPARE(ini.value(QStringLiteral("provider.deepseek/baseUrl")).toString(),
                 f.mainUpstream.url().toString());
        QCOMPARE(ini.value(QStringLiteral("provider.deepseek/models")).toString(),
                 QStringLiteral("deepseek-*"));
        QCOMPARE(ini.value(QStringLiteral("provider.deepseek/aliases")).toString(),
                 QStringLiteral("fast=deepseek-chat, think=deepseek-reasoner"));
        QCOMPARE(ini.value(QStringLiteral("provider.anthropic/kind")).toString(),
                 QStringLiteral("anthropic"));
        QCOMPARE(ini.value(QStringLiteral("provider.openrouter/fallback")).toString(),
                 QStringLiteral("deepseek"));
        QCOMPARE(ini.value(QStringLiteral("provider.anthropic/enabled")).toBool(), false);
        QCOMPARE(f.service->config().providers.size(), 3);
        // Every provider but "default" has a pool of its own (empty: the client's key passes through).
        QCOMPARE(f.keys->servicePools().keys().size(), 3);

        // Removing one and applying removes its group.
        f.page->selectRow(2);
        f.page->removeButton()->click();
        QVERIFY(f.page->apply());
        QSettings again(f.settings->fileName(), QSettings::IniFormat);
        QCOMPARE(again.value(QStringLiteral("providers/order")).toString(), QStringLiteral("deepseek, openrouter"));
        QVERIFY(!again.childGroups().contains(QStringLiteral("provider.anthropic")));
        // And an empty list is the single upstream again.
        f.page->selectRow(0);
        f.page->removeButton()->click();
        f.page->selectRow(0);
        f.page->removeButton()->click();
        QVERIFY(f.page->apply());
        QVERIFY(f.settings->providers().isEmpty());
        QVERIFY(f.service->config().providers.isEmpty());
    }

    void carryOverKeepsTheKeysAndEachProviderGetsItsOwn()
    {
        Fixture f;
        QVERIFY(f.setUp());
        QVERIFY(f.page->emptyHint()->text().contains(f.mainUpstream.url().toString()));
        it::MockUpstream other;
        QVERIFY(other.listen());
        other.setHandler(
            [](const it::RecordedRequest &) { return it::MockResponse::json(200, chatCompletion()); });

        int asked = 0;
        f.page->setCarryOverPrompt([&asked] {
            ++asked;
            return true;
        });
        ProviderConfig custom;
        custom.id = QStringLiteral("other");
        f.page->addPreset(custom);
        QCOMPARE(asked, 1);
        QCOMPARE(f.page->model()->rowCount(), 2);
        QCOMPARE(f.page->model()->draft(0).id, QStringLiteral("default"));
        QCOMPARE(f.page->model()->draft(0).baseUrl, f.mainUpstream.url().toString());
        QCOMPARE(f.page->selectedRow(), 1);
        f.page->baseUrlEdit()->setText(other.url().toString());
        f.page->modelsEdit()->setText(QStringLiteral("other-*"));
        f.page->addPreset(preset(QStringLiteral("groq"))); // not the first: not asked again
        QCOMPARE(asked, 1);
        f.page->removeButton()->click();
        QVERIFY2(f.page->apply(), qPrintable(f.page->messageText()));

        // The main keys stay in their store and pool, and serve "default"; "other" has a pool of its own.
        QList<ApiKey> stored;
        QString error;
        QVERIFY(f.store->load(&stored, &error));
        QCOMPARE(secretsOf(stored), QStringList { MainKey });
        QCOMPARE(f.keys->pool(QStringLiteral("default")), &f.pool);
        QVERIFY(!f.keys->servicePools().contains(QStringLiteral("default")));
        QVERIFY(f.keys->servicePools().contains(QStringLiteral("other")));
        KeyPool *otherPool = f.keys->pool(QStringLiteral("other"));
        QVERIFY(otherPool && otherPool != &f.pool);

        // The Keys page edits the selected provider's pool, saved to that provider's store.
        KeysPage keysPage(&f.pool, f.store.get(), nullptr);
        QVERIFY(!keysPage.providerCombo()->isVisibleTo(&keysPage));
        QCOMPARE(keysPage.currentProvider(), QString());
        keysPage.setProviderKeys(f.keys.get());
        QVERIFY(keysPage.providerCombo()->isVisibleTo(&keysPage));
        QCOMPARE(keysPage.providerCombo()->count(), 2);
        QCOMPARE(keysPage.currentProvider(), QStringLiteral("default"));
        QCOMPARE(keysPage.currentPool(), &f.pool);
        QSignalSpy selected(&keysPage, &KeysPage::providerSelected);
        QVERIFY(keysPage.selectProvider(QStringLiteral("other")));
        QCOMPARE(selected.count(), 1);
        QCOMPARE(keysPage.currentPool(), otherPool);
        QCOMPARE(keysPage.model()->rowCount(), 0);
        keysPage.pasteBox()->setPlainText(OtherKey);
        keysPage.addButton()->click();
        QCOMPARE(secretsOf(otherPool->keys()), QStringList { OtherKey });
        QCOMPARE(secretsOf(f.pool.keys()), QStringList { MainKey });
        FileKeyStore otherFile(UserStores::providerKeysFile(f.store->location(), QStringLiteral("other")));
        QVERIFY(otherFile.load(&stored, &error));
        QCOMPARE(secretsOf(stored), QStringList { OtherKey });
        QVERIFY(f.store->load(&stored, &error));
        QCOMPARE(secretsOf(stored), QStringList { MainKey });
        QVERIFY(!keysPage.storageNotice().isEmpty());
        QVERIFY(keysPage.selectProvider(QStringLiteral("default")));
        QCOMPARE(keysPage.model()->rowCount(), 1);

        // Through the proxy: each provider's requests carry that provider's key.
        QNetworkAccessManager client;
        const ProxyAnswer toOther
            = postThrough(&client, f.service->endpointUrl(),
                          R"({"model":"other-1","messages":[{"role":"user","content":"hi"}]})");
        QCOMPARE(toOther.status, 200);
        // (The proxy also checked the new key: GET /v1/models of "other", with that key.)
        const QList<it::RecordedRequest> received = other.requests();
        QVERIFY(std::all_of(received.cbegin(), received.cend(), [](const it::RecordedRequest &request) {
            return request.header("authorization") == "Bearer " + OtherKey.toUtf8();
        }));
        QCOMPARE(other.lastRequest().target, QByteArray("/v1/chat/completions"));
        const ProxyAnswer toDefault
            = postThrough(&client, f.service->endpointUrl(),
                          R"({"model":"gpt-x","messages":[{"role":"user","content":"hi"}]})");
        QCOMPARE(toDefault.status, 200);
        QCOMPARE(f.mainUpstream.lastRequest().header("authorization"), "Bearer " + MainKey.toUtf8());
    }

    void testListsTheModelsWithOneOfItsKeys()
    {
        Fixture f;
        QVERIFY(f.setUp());
        it::MockUpstream anthropic;
        QVERIFY(anthropic.listen());
        anthropic.setHandler([](const it::RecordedRequest &request) {
            if (request.header("x-api-key") != OtherKey.toUtf8())
                return it::MockResponse::json(
                    401,
                    R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})");
            return it::MockResponse::json(200,
                                          modelList({ QStringLiteral("claude-a"), QStringLiteral("claude-b"),
                                                      QStringLiteral("claude-c") }));
        });
        f.page->addPreset(preset(QStringLiteral("anthropic")));
        f.page->baseUrlEdit()->setText(anthropic.url().toString());

        // Not applied yet: no keys of its own, asked without one.
        f.page->testSelected();
        QTRY_VERIFY(f.page->testText().contains(QLatin1String("HTTP 401")));
        QVERIFY(f.page->testText().contains(QLatin1String("invalid x-api-key")));
        QVERIFY(!anthropic.lastRequest().hasHeader("authorization"));
        QCOMPARE(anthropic.lastRequest().header("anthropic-version"), QByteArray("2023-06-01"));

        QVERIFY(f.page->apply());
        f.keys->pool(QStringLiteral("anthropic"))->setKeys({ { OtherKey, QString(), true } });
        f.page->testSelected();
        QVERIFY(!f.page->testText().contains(OtherKey)); // masked while it asks
        QTRY_VERIFY(f.page->testText().contains(QLatin1String("3 model")));
        QVERIFY(f.page->testText().contains(QLatin1String("claude-a")));
        QCOMPARE(anthropic.lastRequest().target, QByteArray("/v1/models"));

        // Nobody listening: where it failed.
        QTcpServer closed;
        QVERIFY(closed.listen(QHostAddress::LocalHost));
        const quint16 port = closed.serverPort();
        closed.close();
        f.page->baseUrlEdit()->setText(QStringLiteral("http://127.0.0.1:%1").arg(port));
        f.page->testSelected();
        QTRY_VERIFY(f.page->testText().startsWith(QLatin1String("Failed")));
    }

    void providerKeyStoresRoundTripInFiles()
    {
        // KEYRELAY_KEYSTORE=file (set for every test): the owner-only files next to the settings.
        QTemporaryDir dir;
        const QString settingsFile = dir.filePath(QStringLiteral("KeyRelay.ini"));
        UserStores stores = openUserStores(settingsFile);
        QCOMPARE(stores.reason, UserStores::Reason::ForcedFile);
        QString error;
        QVERIFY(stores.keys->save({ { MainKey, QString(), true } }, &error));
        auto openai = stores.providerKeys(QStringLiteral("openai"));
        QVERIFY(openai->save({ { OtherKey, QStringLiteral("team"), false } }, &error));
        const QString file = dir.filePath(QStringLiteral("keys-openai.json"));
        QCOMPARE(openai->location(), file);
        QCOMPARE(QFile::permissions(file) & (QFile::ReadGroup | QFile::ReadOther | QFile::WriteGroup),
                 QFile::Permissions());

        UserStores reopened = openUserStores(settingsFile);
        QList<ApiKey> keys;
        QVERIFY(reopened.providerKeys(QStringLiteral("openai"))->load(&keys, &error));
        QCOMPARE(keys.size(), 1);
        QCOMPARE(keys.first().secret, OtherKey);
        QCOMPARE(keys.first().label, QStringLiteral("team"));
        QCOMPARE(keys.first().enabled, false);
        QVERIFY(reopened.keys->load(&keys, &error)); // the main list is its own
        QCOMPARE(secretsOf(keys), QStringList { MainKey });
        QVERIFY(reopened.providerKeys(QStringLiteral("groq"))->load(&keys, &error));
        QVERIFY(keys.isEmpty());
    }
};

QTEST_MAIN(TestProvidersPage)
#include "tst_providerspage.moc"
