// Several providers behind one endpoint (issue 17), end to end against three mock upstreams: routing by
// exact model, prefix, alias, pattern and default; the body unchanged except the model string; Anthropic's
// key placement; fallback before the first byte and never after; providers in the status endpoint.
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"
#include "usagestore.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

using namespace it;
using keyrelay::ProviderConfig;
using keyrelay::ProviderKind;

namespace {
const QString OpenAiKey = QStringLiteral("sk-test-openai-aaaaaaaaaaaa0001");
const QString DeepSeekKey = QStringLiteral("sk-test-deepseek-bbbbbbbbbb0002");
const QString ClaudeKey = QStringLiteral("sk-ant-test-cccccccccccccccc0003");
const QString ClientKey = QStringLiteral("sk-client-dummy-dddddddddddd0004");

keyrelay::ApiKey apiKey(const QString &secret)
{
    keyrelay::ApiKey key;
    key.secret = secret;
    return key;
}
} // namespace

class ProvidersTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void routesByModel_data();
    void routesByModel();
    void bodyUnchangedExceptModel();
    void anthropicPathGoesToAnthropicKindWithItsHeaders();
    void anthropicVersionOfTheClientKept();
    void providerWithoutKeysPassesTheClientsKey();
    void pathFormChoosesProvider();
    void unknownProviderAnswers404();
    void fallbackBeforeFirstByte_data();
    void fallbackBeforeFirstByte();
    void noFallbackAfterFirstByte();
    void keyQuotedByOneProviderMaskedEverywhere();
    void mergedModelList();
    void modelByIdFromItsProvider();
    void providerWithoutPatternsRoutedByItsFetchedList();
    void anthropicUsage_data();
    void anthropicUsage();
    void responsesApiUsage_data();
    void responsesApiUsage();
    void anthropicKeyHealth();
    void providerKeysRecheckedAgainstTheirProviderUntilRemoved();
    void statusListsProviders();
    void singleUpstreamConfigurationStillWorks();

private:
    bool startProxy(const QList<ProviderConfig> &providers, int maxAttempts = 3);
    std::unique_ptr<RawClient> post(const QByteArray &path, const QByteArray &body, Headers headers = {});
    QList<ProviderConfig> threeProviders() const;

    std::unique_ptr<MockUpstream> m_openai;
    std::unique_ptr<MockUpstream> m_deepseek;
    std::unique_ptr<MockUpstream> m_claude;
    std::unique_ptr<ProxyHarness> m_proxy;
    keyrelay::KeyPool m_deepseekKeys;
    keyrelay::KeyPool m_claudeKeys;
};

void ProvidersTest::init()
{
    for (auto *mock : { &m_openai, &m_deepseek, &m_claude }) {
        *mock = std::make_unique<MockUpstream>();
        QVERIFY((*mock)->listen());
        (*mock)->setHandler([](const RecordedRequest &) {
            return MockResponse::json(200, R"({"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})");
        });
    }
    m_deepseekKeys.setKeys({ apiKey(DeepSeekKey) });
    m_claudeKeys.setKeys({ apiKey(ClaudeKey) });
}

void ProvidersTest::cleanup()
{
    m_proxy.reset();
    m_openai.reset();
    m_deepseek.reset();
    m_claude.reset();
}

QList<ProviderConfig> ProvidersTest::threeProviders() const
{
    ProviderConfig openai;
    openai.id = QStringLiteral("openai");
    openai.baseUrl = m_openai->url();
    openai.models = { QStringLiteral("gpt-*"), QStringLiteral("o*") };
    openai.fallback = { QStringLiteral("deepseek") };
    ProviderConfig deepseek;
    deepseek.id = QStringLiteral("deepseek");
    deepseek.name = QStringLiteral("DeepSeek");
    deepseek.baseUrl = m_deepseek->url();
    deepseek.models = { QStringLiteral("deepseek-*"), QStringLiteral("gpt-4o-mini*") };
    deepseek.aliases = { { QStringLiteral("fast"), QStringLiteral("deepseek-chat") },
                         { QStringLiteral("gpt-4o"), QStringLiteral("deepseek-chat") } };
    ProviderConfig claude;
    claude.id = QStringLiteral("claude");
    claude.kind = ProviderKind::Anthropic;
    claude.baseUrl = m_claude->url();
    claude.models = { QStringLiteral("claude-*") };
    return { openai, deepseek, claude };
}

bool ProvidersTest::startProxy(const QList<ProviderConfig> &providers, int maxAttempts)
{
    m_proxy = std::make_unique<ProxyHarness>(QStringList { OpenAiKey });
    m_proxy->service.setProviderPools(
        { { QStringLiteral("deepseek"), &m_deepseekKeys }, { QStringLiteral("claude"), &m_claudeKeys } });
    keyrelay::ProxyConfig config = testConfig(providers.isEmpty() ? m_openai->url() : providers.first().baseUrl);
    config.providers = providers;
    config.maxAttempts = maxAttempts;
    QString error;
    const bool ok = m_proxy->start(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

std::unique_ptr<RawClient> ProvidersTest::post(const QByteArray &path, const QByteArray &body, Headers headers)
{
    headers.prepend(makeHeader("Content-Type", "application/json"));
    if (!countHeader(headers, "x-api-key"))
        headers.append(makeHeader("Authorization", "Bearer " + ClientKey.toUtf8()));
    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(), buildRequest("POST", path, m_proxy->port(), headers, body));
    client->waitFinished(10000);
    return client;
}

void ProvidersTest::routesByModel_data()
{
    QTest::addColumn<QString>("model");
    QTest::addColumn<QString>("provider");
    QTest::addColumn<QString>("forwarded");

    const auto row = [](const char *name, const char *model, const char *provider, const char *forwarded) {
        QTest::newRow(name) << QString::fromLatin1(model) << QString::fromLatin1(provider)
                            << QString::fromLatin1(forwarded);
    };
    row("pattern gpt-*", "gpt-4.1", "openai", "gpt-4.1");
    row("more specific pattern wins", "gpt-4o-mini-2024", "deepseek", "gpt-4o-mini-2024");
    row("prefix removed", "deepseek/gpt-4.1", "deepseek", "gpt-4.1");
    row("alias", "fast", "deepseek", "deepseek-chat");
    row("alias over another's pattern", "gpt-4o", "deepseek", "deepseek-chat");
    row("exact listed name", "deepseek-reasoner", "deepseek", "deepseek-reasoner");
    row("default: first of the kind", "llama-3", "openai", "llama-3");
    row("anthropic pattern not for the chat API", "claude-3-haiku", "openai", "claude-3-haiku");
    row("prefix of the other kind stays", "claude/x", "openai", "claude/x");
}

void ProvidersTest::routesByModel()
{
    QFETCH(QString, model);
    QFETCH(QString, provider);
    QFETCH(QString, forwarded);
    QVERIFY(startProxy(threeProviders()));
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    const QByteArray body = R"({"model":")" + model.toUtf8() + R"(","messages":[{"role":"user","content":"hi"}]})";
    auto client = post("/v1/chat/completions", body);
    QCOMPARE(client->status(), 200);
    const QHash<QString, MockUpstream *> mocks { { QStringLiteral("openai"), m_openai.get() },
                                                 { QStringLiteral("deepseek"), m_deepseek.get() },
                                                 { QStringLiteral("claude"), m_claude.get() } };
    for (auto it = mocks.cbegin(); it != mocks.cend(); ++it)
        QCOMPARE(it.value()->requestCount(), it.key() == provider ? 1 : 0);
    const RecordedRequest seen = mocks.value(provider)->lastRequest();
    QCOMPARE(QJsonDocument::fromJson(seen.body).object().value(QLatin1String("model")).toString(), forwarded);
    const QByteArray key = provider == QLatin1String("openai") ? OpenAiKey.toUtf8() : DeepSeekKey.toUtf8();
    QCOMPARE(seen.header("Authorization"), "Bearer " + key);
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QCOMPARE(record.provider, provider);
    QCOMPARE(record.model, forwarded);
}

void ProvidersTest::bodyUnchangedExceptModel()
{
    QVERIFY(startProxy(threeProviders()));
    // Odd spacing, key order, escapes and a "model" inside a message: only the top-level value changes.
    const QByteArray body = "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"model: \\\"fast\\\" \\u00e9\"} ],\n"
                            "  \"model\"  :  \"fast\" , \"temperature\":0.50 }";
    auto client = post("/v1/embeddings", body);
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_deepseek->requestCount(), 1);
    QByteArray expected = body;
    expected.replace("\"model\"  :  \"fast\"", "\"model\"  :  \"deepseek-chat\"");
    QCOMPARE(m_deepseek->lastRequest().body, expected);
}

void ProvidersTest::anthropicPathGoesToAnthropicKindWithItsHeaders()
{
    QVERIFY(startProxy(threeProviders()));
    const QByteArray body = R"({"model":"claude-sonnet-4","max_tokens":10,"messages":[{"role":"user","content":"hi"}]})";
    // As Claude Code sends it: a query string, its own (dummy) x-api-key, an anthropic-beta header.
    auto client = post("/v1/messages?beta=true", body,
                       { makeHeader("x-api-key", ClientKey.toUtf8()), makeHeader("anthropic-beta", "tools-2025") });
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_claude->requestCount(), 1);
    QCOMPARE(m_openai->requestCount(), 0);
    const RecordedRequest seen = m_claude->lastRequest();
    QCOMPARE(seen.target, QByteArray("/v1/messages?beta=true"));
    QCOMPARE(seen.header("x-api-key"), ClaudeKey.toUtf8());
    QCOMPARE(countHeader(seen.headers, "x-api-key"), 1);
    QVERIFY(!seen.hasHeader("Authorization"));
    QCOMPARE(seen.header("anthropic-version"), QByteArray("2023-06-01"));
    QCOMPARE(seen.header("anthropic-beta"), QByteArray("tools-2025"));
    QCOMPARE(seen.body, body);

    // count_tokens too, and a model no pattern matches still goes to the anthropic kind (its default).
    auto count = post("/v1/messages/count_tokens", R"({"model":"some-model","messages":[]})");
    QCOMPARE(count->status(), 200);
    QCOMPARE(m_claude->requestCount(), 2);
    QCOMPARE(m_openai->requestCount(), 0);
}

void ProvidersTest::anthropicVersionOfTheClientKept()
{
    QVERIFY(startProxy(threeProviders()));
    auto client = post("/v1/messages", R"({"model":"claude-x","messages":[]})",
                       { makeHeader("anthropic-version", "2026-10-21") });
    QCOMPARE(client->status(), 200);
    QCOMPARE(countHeader(m_claude->lastRequest().headers, "anthropic-version"), 1);
    QCOMPARE(m_claude->lastRequest().header("anthropic-version"), QByteArray("2026-10-21"));
}

void ProvidersTest::providerWithoutKeysPassesTheClientsKey()
{
    // A local upstream (Ollama, LM Studio) or a provider whose keys the client holds: no pool keys, so the
    // client's key goes through, in the provider kind's header.
    m_claudeKeys.setKeys({});
    QVERIFY(startProxy(threeProviders()));
    auto client = post("/v1/messages", R"({"model":"claude-x","messages":[]})",
                       { makeHeader("x-api-key", ClientKey.toUtf8()) });
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_claude->lastRequest().header("x-api-key"), ClientKey.toUtf8());
    QCOMPARE(countHeader(m_claude->lastRequest().headers, "x-api-key"), 1);
    QVERIFY(!m_claude->lastRequest().hasHeader("Authorization"));
}

void ProvidersTest::pathFormChoosesProvider()
{
    QVERIFY(startProxy(threeProviders()));
    auto client = post("/p/deepseek/v1/chat/completions?x=1", R"({"model":"gpt-4.1","messages":[]})");
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_deepseek->requestCount(), 1);
    QCOMPARE(m_openai->requestCount(), 0);
    QCOMPARE(m_deepseek->lastRequest().target, QByteArray("/v1/chat/completions?x=1"));
}

void ProvidersTest::unknownProviderAnswers404()
{
    QList<ProviderConfig> providers = threeProviders();
    providers[1].enabled = false;
    QVERIFY(startProxy(providers));
    auto unknown = post("/p/nobody/v1/chat/completions", R"({"model":"x"})");
    QCOMPARE(unknown->status(), 404);
    QVERIFY(unknown->body().contains("unknown_provider"));
    auto disabled = post("/p/deepseek/v1/chat/completions", R"({"model":"x"})");
    QCOMPARE(disabled->status(), 404);
    QVERIFY(disabled->body().contains("provider_disabled"));
    // A disabled provider's alias routes nowhere: the default provider gets the model as sent.
    auto alias = post("/v1/chat/completions", R"({"model":"fast"})");
    QCOMPARE(alias->status(), 200);
    QCOMPARE(m_openai->requestCount(), 1);
    QCOMPARE(m_deepseek->requestCount(), 0);
}

void ProvidersTest::fallbackBeforeFirstByte_data()
{
    QTest::addColumn<QString>("failure");
    QTest::addColumn<int>("openaiRequests");
    QTest::newRow("5xx after maxAttempts") << QStringLiteral("503") << 2;
    QTest::newRow("529 overloaded") << QStringLiteral("529") << 2;
    QTest::newRow("model does not exist") << QStringLiteral("404model") << 1;
    QTest::newRow("unreachable") << QStringLiteral("down") << 0;
    QTest::newRow("no usable key") << QStringLiteral("nokey") << 0;
}

void ProvidersTest::fallbackBeforeFirstByte()
{
    QFETCH(QString, failure);
    QFETCH(int, openaiRequests);
    m_openai->setHandler([failure](const RecordedRequest &) {
        if (failure == QLatin1String("404model"))
            return MockResponse::json(
                404, R"({"error":{"message":"The model `gpt-9` does not exist","code":"model_not_found"}})");
        return MockResponse::json(failure.toInt(), R"({"error":{"message":"overloaded"}})");
    });
    QList<ProviderConfig> providers = threeProviders();
    providers[1].aliases.append({ QStringLiteral("gpt-9"), QStringLiteral("deepseek-chat") });
    if (failure == QLatin1String("down")) {
        const QUrl dead = m_openai->url();
        m_openai.reset(); // nothing listens there any more
        providers[0].baseUrl = dead;
    }
    QVERIFY(startProxy(providers, 2));
    // Two keys and maxAttempts 2: a 5xx is tried on both before the next provider.
    m_proxy->setKeys({ OpenAiKey, QStringLiteral("sk-test-openai-second-eeeeee0005") });
    if (failure == QLatin1String("nokey")) {
        m_proxy->keys.setEnabled(0, false);
        m_proxy->keys.setEnabled(1, false);
    }
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    // "openai/": the first choice is openai; its fallback gets "gpt-9", which deepseek's alias maps.
    auto client = post("/v1/chat/completions", R"({"model":"openai/gpt-9","messages":[]})");
    QCOMPARE(client->status(), 200);
    if (m_openai) {
        QCOMPARE(m_openai->requestCount(), openaiRequests);
        if (openaiRequests > 0)
            QCOMPARE(QJsonDocument::fromJson(m_openai->lastRequest().body).object().value(QLatin1String("model")).toString(),
                     QStringLiteral("gpt-9"));
    }
    QCOMPARE(m_deepseek->requestCount(), 1);
    // The next provider gets the same model name unless its own aliases map it.
    QCOMPARE(QJsonDocument::fromJson(m_deepseek->lastRequest().body).object().value(QLatin1String("model")).toString(),
             QStringLiteral("deepseek-chat"));
    // Each try is a row in the log: the failed provider's first, then the one that served.
    QTRY_COMPARE(finished.size(), 2);
    const auto tried = finished.at(0).first().value<keyrelay::RequestRecord>();
    const auto served = finished.at(1).first().value<keyrelay::RequestRecord>();
    QCOMPARE(tried.provider, QStringLiteral("openai"));
    QVERIFY(tried.fellBack);
    QVERIFY(!tried.error.isEmpty());
    QVERIFY(tried.id != served.id);
    QCOMPARE(served.provider, QStringLiteral("deepseek"));
    QCOMPARE(served.status, 200);
    QVERIFY(!served.fellBack);
}

void ProvidersTest::noFallbackAfterFirstByte()
{
    // The stream started: a cut-off reaches the client as one, and no other provider is asked.
    m_openai->setHandler([](const RecordedRequest &) {
        MockResponse response;
        response.mode = MockResponse::Mode::CutOff;
        response.headers = { { "Content-Type", "text/event-stream" } };
        response.body = QByteArray("data: {\"choices\":[]}\n\n").repeated(100);
        response.cutAfterBytes = 100;
        return response;
    });
    QVERIFY(startProxy(threeProviders()));
    auto client = post("/v1/chat/completions", R"({"model":"gpt-4.1","stream":true,"messages":[]})");
    QCOMPARE(client->status(), 200);
    QVERIFY(client->truncated());
    QCOMPARE(m_openai->requestCount(), 1);
    QCOMPARE(m_deepseek->requestCount(), 0);
}

void ProvidersTest::keyQuotedByOneProviderMaskedEverywhere()
{
    // The upstream quotes another provider's key: every pool's keys are masked, not only the first one's.
    m_claude->setHandler([](const RecordedRequest &) {
        return MockResponse::json(400, R"({"type":"error","error":{"type":"invalid_request_error","message":"bad key )"
                                           + DeepSeekKey.toUtf8() + R"("}})");
    });
    QVERIFY(startProxy(threeProviders()));
    auto client = post("/v1/messages", R"({"model":"claude-x","messages":[]})");
    QCOMPARE(client->status(), 400);
    QVERIFY2(!client->body().contains(DeepSeekKey.toUtf8()), client->body().constData());
    QVERIFY(client->body().contains("bad key"));
}

void ProvidersTest::mergedModelList()
{
    const auto lister = [](const QByteArray &ids, const QByteArray &expectedHeader, const QByteArray &expectedValue) {
        return [=](const RecordedRequest &request) {
            if (request.target != "/v1/models" || request.header(expectedHeader) != expectedValue)
                return MockResponse::json(401, R"({"error":{"message":"no"}})");
            QByteArray data;
            for (const QByteArray &id : ids.split(','))
                data += QByteArray(data.isEmpty() ? "" : ",") + R"({"id":")" + id + R"(","object":"model"})";
            return MockResponse::json(200, R"({"object":"list","data":[)" + data + "]}");
        };
    };
    m_openai->setHandler(lister("gpt-4.1,shared-model", "Authorization", "Bearer " + OpenAiKey.toUtf8()));
    m_deepseek->setHandler(lister("deepseek-chat,shared-model,qwen-max", "Authorization", "Bearer " + DeepSeekKey.toUtf8()));
    m_claude->setHandler(lister("claude-sonnet-4", "x-api-key", ClaudeKey.toUtf8()));
    QVERIFY(startProxy(threeProviders()));

    // Before any list was fetched, a model no pattern matches goes to the default provider.
    m_deepseek->setHandler([inner = lister("deepseek-chat,shared-model,qwen-max", "Authorization",
                                           "Bearer " + DeepSeekKey.toUtf8())](const RecordedRequest &request) {
        if (request.method == "POST")
            return MockResponse::json(200, R"({"ok":true})");
        return inner(request);
    });
    m_openai->setHandler([inner = lister("gpt-4.1,shared-model", "Authorization", "Bearer " + OpenAiKey.toUtf8())](
                             const RecordedRequest &request) {
        if (request.method == "POST")
            return MockResponse::json(200, R"({"ok":true})");
        return inner(request);
    });
    auto before = post("/v1/chat/completions", R"({"model":"qwen-max","messages":[]})");
    QCOMPARE(before->status(), 200);
    QCOMPARE(m_openai->requestCount(), 1);

    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(), buildRequest("GET", "/v1/models", m_proxy->port(),
                                               { makeHeader("Authorization", "Bearer " + ClientKey.toUtf8()) }, {}));
    QVERIFY(client->waitFinished(10000));
    QCOMPARE(client->status(), 200);
    const QJsonArray data = QJsonDocument::fromJson(client->body()).object().value(QLatin1String("data")).toArray();
    QHash<QString, QString> owners;
    QStringList ids;
    for (const QJsonValue &entry : data) {
        const QJsonObject model = entry.toObject();
        ids.append(model.value(QLatin1String("id")).toString());
        owners.insert(ids.last(), model.value(QLatin1String("owned_by")).toString());
    }
    // Each id once, the first provider in order owning a shared one; configured names and aliases too.
    QCOMPARE(ids.count(QStringLiteral("shared-model")), 1);
    QCOMPARE(owners.value(QStringLiteral("shared-model")), QStringLiteral("openai"));
    QCOMPARE(owners.value(QStringLiteral("gpt-4.1")), QStringLiteral("openai"));
    QCOMPARE(owners.value(QStringLiteral("qwen-max")), QStringLiteral("deepseek"));
    QCOMPARE(owners.value(QStringLiteral("fast")), QStringLiteral("deepseek"));
    QCOMPARE(owners.value(QStringLiteral("claude-sonnet-4")), QStringLiteral("claude"));
    QVERIFY(!ids.contains(QStringLiteral("gpt-*"))); // patterns are not models
    QVERIFY(!client->body().contains(OpenAiKey.toUtf8()));

    // Now that deepseek listed it (and no one else), qwen-max goes there.
    auto after = post("/v1/chat/completions", R"({"model":"qwen-max","messages":[]})");
    QCOMPARE(after->status(), 200);
    QCOMPARE(m_deepseek->lastRequest().method, QByteArray("POST"));
    QCOMPARE(m_deepseek->lastRequest().target, QByteArray("/v1/chat/completions"));
}

void ProvidersTest::modelByIdFromItsProvider()
{
    QVERIFY(startProxy(threeProviders()));
    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(), buildRequest("GET", "/v1/models/fast", m_proxy->port(), {}, {}));
    QVERIFY(client->waitFinished(10000));
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_deepseek->requestCount(), 1);
    QCOMPARE(m_deepseek->lastRequest().target, QByteArray("/v1/models/deepseek-chat"));
    QCOMPARE(m_openai->requestCount(), 0);
}

void ProvidersTest::providerWithoutPatternsRoutedByItsFetchedList()
{
    // DeepSeek configures no models: its own list decides, fetched after the start and after a key change.
    m_deepseek->setHandler([](const RecordedRequest &request) {
        if (request.method == "GET")
            return MockResponse::json(200, R"({"data":[{"id":"qwen-max"}]})");
        return MockResponse::json(200, R"({"ok":true})");
    });
    QList<ProviderConfig> providers = threeProviders();
    providers[1].models.clear();
    providers[1].aliases.clear();
    QVERIFY(startProxy(providers));
    const auto listFetches = [this](const QByteArray &authorization) {
        int count = 0;
        const auto requests = m_deepseek->requests();
        for (const RecordedRequest &request : requests)
            count += request.method == "GET" && request.target == "/v1/models"
                && request.header("Authorization") == authorization;
        return count;
    };
    QTRY_COMPARE(listFetches("Bearer " + DeepSeekKey.toUtf8()), 1);
    QCOMPARE(m_openai->requestCount(), 0); // openai has patterns: nothing to fetch there
    auto client = post("/v1/chat/completions", R"({"model":"qwen-max","messages":[]})");
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_deepseek->lastRequest().method, QByteArray("POST"));
    QCOMPARE(m_openai->requestCount(), 0);

    const QString newKey = QStringLiteral("sk-test-deepseek-new-ffffff0006");
    m_deepseekKeys.setKeys({ apiKey(newKey) });
    QTRY_COMPARE(listFetches("Bearer " + newKey.toUtf8()), 1);
}

void ProvidersTest::anthropicUsage_data()
{
    QTest::addColumn<bool>("stream");
    QTest::newRow("message") << false;
    QTest::newRow("stream") << true;
}

void ProvidersTest::anthropicUsage()
{
    QFETCH(bool, stream);
    m_claude->setHandler([stream](const RecordedRequest &) {
        if (!stream)
            return MockResponse::json(
                200, R"({"id":"msg_01","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hi"}],)"
                     R"("stop_reason":"end_turn","usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":10,"output_tokens":6}})");
        // message_start carries the input counts at the very beginning, message_delta the output at the end;
        // enough content between them that a tail of the stream would not hold both.
        QList<QPair<int, QByteArray>> events;
        events.append({ 0, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\","
                           "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,"
                           "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":10,\"output_tokens\":1}}}\n\n" });
        const QByteArray delta = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
                                 "\"delta\":{\"type\":\"text_delta\",\"text\":\"" + QByteArray(1000, 'x') + "\"}}\n\n";
        for (int i = 0; i < 200; ++i)
            events.append({ 0, delta });
        events.append({ 0, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
                           "\"usage\":{\"output_tokens\":15}}\n\n" });
        events.append({ 0, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n" });
        return MockResponse::sse(events);
    });
    QVERIFY(startProxy(threeProviders()));
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = post("/v1/messages", stream ? R"({"model":"claude-x","stream":true,"messages":[]})"
                                              : R"({"model":"claude-x","messages":[]})");
    QCOMPARE(client->status(), 200);
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    // Input counts include the cache's (Anthropic counts them apart from input_tokens).
    QCOMPARE(record.promptTokens, stream ? 35 : 25);
    QCOMPARE(record.completionTokens, stream ? 15 : 6);
    QCOMPARE(record.totalTokens, stream ? 50 : 31);
    QCOMPARE(record.provider, QStringLiteral("claude"));
}

void ProvidersTest::responsesApiUsage_data()
{
    QTest::addColumn<bool>("stream");
    QTest::newRow("response") << false;
    QTest::newRow("stream") << true;
}

void ProvidersTest::responsesApiUsage()
{
    QFETCH(bool, stream);
    m_openai->setHandler([stream](const RecordedRequest &) {
        const QByteArray usage = R"("usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0},"output_tokens":7,"total_tokens":12})";
        if (!stream)
            return MockResponse::json(200, R"({"id":"resp_1","object":"response","status":"completed","output":[],)" + usage + "}");
        return MockResponse::sse({
            { 0, R"(event: response.created
data: {"type":"response.created","response":{"id":"resp_1","object":"response","status":"in_progress","usage":null}}

)" },
            { 0, R"(event: response.output_text.delta
data: {"type":"response.output_text.delta","delta":"Hi"}

)" },
            { 0, R"(event: response.completed
data: {"type":"response.completed","response":{"id":"resp_1","object":"response","status":"completed",)" + usage + R"(}}

)" },
        });
    });
    QVERIFY(startProxy(threeProviders()));
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    auto client = post("/v1/responses", stream ? R"({"model":"gpt-5","stream":true,"input":"hi"})"
                                               : R"({"model":"gpt-5","input":"hi"})");
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_openai->lastRequest().target, QByteArray("/v1/responses"));
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QCOMPARE(record.promptTokens, 5);
    QCOMPARE(record.completionTokens, 7);
    QCOMPARE(record.totalTokens, 12);
}

void ProvidersTest::anthropicKeyHealth()
{
    // Anthropic's error shapes: a key out of credit is exhausted and the next key serves; an overloaded
    // API (529) is nobody's key's fault.
    const QString secondKey = QStringLiteral("sk-ant-test-second-gggggggggg0007");
    m_claudeKeys.setKeys({ apiKey(ClaudeKey), apiKey(secondKey) });
    bool overloaded = false;
    m_claude->setHandler([&](const RecordedRequest &request) {
        if (overloaded)
            return MockResponse::json(529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
        if (request.header("x-api-key") == ClaudeKey.toUtf8())
            return MockResponse::json(400, R"({"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}})");
        return MockResponse::json(200, R"({"type":"message","content":[]})");
    });
    QVERIFY(startProxy(threeProviders()));
    auto client = post("/v1/messages", R"({"model":"claude-x","messages":[]})");
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_claude->requestCount(), 2);
    QTRY_COMPARE(m_claudeKeys.snapshot().at(0).health, keyrelay::KeyHealth::Exhausted);
    QCOMPARE(m_claudeKeys.snapshot().at(1).health, keyrelay::KeyHealth::Ok);

    overloaded = true;
    auto busy = post("/v1/messages", R"({"model":"claude-x","messages":[]})");
    QCOMPARE(busy->status(), 529);
    QCOMPARE(m_claudeKeys.snapshot().at(1).health, keyrelay::KeyHealth::Ok);
}

void ProvidersTest::providerKeysRecheckedAgainstTheirProviderUntilRemoved()
{
    // A DeepSeek key refused once is re-checked against DeepSeek's model list (its own base URL), while
    // DeepSeek is a provider; once it is removed from the settings, its keys are no longer checked.
    bool refuse = true;
    m_deepseek->setHandler([&refuse](const RecordedRequest &) {
        return refuse ? MockResponse::json(401, R"({"error":{"message":"Incorrect API key","code":"invalid_api_key"}})")
                      : MockResponse::json(200, R"({"data":[]})");
    });
    const auto checks = [this] {
        int count = 0;
        const auto requests = m_deepseek->requests();
        for (const RecordedRequest &request : requests)
            count += request.method == "GET" && request.target == "/v1/models";
        return count;
    };
    m_proxy = std::make_unique<ProxyHarness>(QStringList { OpenAiKey });
    m_proxy->service.setProviderPools(
        { { QStringLiteral("deepseek"), &m_deepseekKeys }, { QStringLiteral("claude"), &m_claudeKeys } });
    keyrelay::ProxyConfig config = testConfig(m_openai->url());
    config.providers = threeProviders();
    config.recheckInvalidSec = 1;
    QVERIFY(m_proxy->start(config));
    QCOMPARE(post("/v1/chat/completions", R"({"model":"fast"})")->status(), 401);
    QTRY_COMPARE(m_deepseekKeys.snapshot().at(0).health, keyrelay::KeyHealth::Invalid);
    refuse = false;
    QTRY_VERIFY_WITH_TIMEOUT(checks() >= 1, 10000);
    QTRY_COMPARE(m_deepseekKeys.snapshot().at(0).health, keyrelay::KeyHealth::Ok);

    // Refused again, then the provider is removed before its re-check is due.
    refuse = true;
    QCOMPARE(post("/v1/chat/completions", R"({"model":"fast"})")->status(), 401);
    QTRY_COMPARE(m_deepseekKeys.snapshot().at(0).health, keyrelay::KeyHealth::Invalid);
    const int before = checks();
    config.providers.removeAt(1);
    config.providers[0].fallback.clear();
    QVERIFY(m_proxy->service.applyConfig(config));
    // Three re-check periods without a check (an absence: nothing to wait for but the time itself).
    QTest::qWait(3000);
    QCOMPARE(checks(), before);
}

void ProvidersTest::statusListsProviders()
{
    QTemporaryDir dir;
    keyrelay::UsageStore usage(dir.filePath(QStringLiteral("usage.sqlite")));
    QVERIFY(startProxy(threeProviders()));
    m_proxy->service.setUsageStore(&usage);
    // One request to DeepSeek and two to OpenAI, each with 3+4 tokens: booked per provider.
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    for (const char *model : { "fast", "gpt-4.1", "gpt-4.1" })
        QCOMPARE(post("/v1/chat/completions", R"({"model":")" + QByteArray(model) + R"("})")->status(), 200);
    QTRY_COMPARE(finished.size(), 3);
    auto client = std::make_unique<RawClient>();
    client->send(m_proxy->port(), buildRequest("GET", "/_keyrelay/status", m_proxy->port(), {}, {}));
    QVERIFY(client->waitFinished(10000));
    QCOMPARE(client->status(), 200);
    const QJsonObject root = QJsonDocument::fromJson(client->body()).object();
    const QJsonArray providers = root.value(QLatin1String("providers")).toArray();
    QCOMPARE(providers.size(), 3);
    QCOMPARE(providers.at(0).toObject().value(QLatin1String("id")).toString(), QStringLiteral("openai"));
    QCOMPARE(providers.at(1).toObject().value(QLatin1String("name")).toString(), QStringLiteral("DeepSeek"));
    QCOMPARE(providers.at(2).toObject().value(QLatin1String("kind")).toString(), QStringLiteral("anthropic"));
    QCOMPARE(providers.at(2).toObject().value(QLatin1String("baseUrl")).toString(), m_claude->url().toString());
    QVERIFY(providers.at(1).toObject().value(QLatin1String("models")).toArray().contains(QStringLiteral("fast")));
    const QJsonArray claudeKeys = providers.at(2).toObject().value(QLatin1String("keys")).toArray();
    QCOMPARE(claudeKeys.size(), 1);
    QCOMPARE(claudeKeys.at(0).toObject().value(QLatin1String("masked")).toString(), keyrelay::KeyPool::mask(ClaudeKey));
    const QJsonObject openaiToday = providers.at(0).toObject().value(QLatin1String("today")).toObject();
    const QJsonObject deepseekToday = providers.at(1).toObject().value(QLatin1String("today")).toObject();
    QCOMPARE(openaiToday.value(QLatin1String("requests")).toInt(), 2);
    QCOMPARE(openaiToday.value(QLatin1String("promptTokens")).toInt(), 6);
    QCOMPARE(deepseekToday.value(QLatin1String("requests")).toInt(), 1);
    QCOMPARE(deepseekToday.value(QLatin1String("completionTokens")).toInt(), 4);
    QCOMPARE(providers.at(1).toObject().value(QLatin1String("total")).toObject().value(QLatin1String("totalTokens")).toInt(), 7);
    QCOMPARE(providers.at(1).toObject().value(QLatin1String("keys")).toArray().at(0).toObject().value(QLatin1String("promptTokens")).toInt(), 3);
    // Every key once at the top, naming its provider; none whole.
    const QJsonArray keys = root.value(QLatin1String("keys")).toArray();
    QCOMPARE(keys.size(), 3);
    QStringList owners;
    for (const QJsonValue &key : keys)
        owners.append(key.toObject().value(QLatin1String("provider")).toString());
    QCOMPARE(owners, (QStringList { QStringLiteral("openai"), QStringLiteral("deepseek"), QStringLiteral("claude") }));
    for (const QString &secret : { OpenAiKey, DeepSeekKey, ClaudeKey })
        QVERIFY(!client->body().contains(secret.toUtf8()));
}

void ProvidersTest::singleUpstreamConfigurationStillWorks()
{
    // No [providers]: the configuration's upstream and keys are the provider "default".
    QVERIFY(startProxy({}));
    auto client = post("/v1/chat/completions", R"({"model":"anything","messages":[]})");
    QCOMPARE(client->status(), 200);
    QCOMPARE(m_openai->requestCount(), 1);
    QCOMPARE(m_openai->lastRequest().header("Authorization"), "Bearer " + OpenAiKey.toUtf8());
    // Anthropic's path goes to the single upstream too, as before (with the pool's key as Bearer).
    auto messages = post("/v1/messages", R"({"model":"claude-x","messages":[]})");
    QCOMPARE(messages->status(), 200);
    QCOMPARE(m_openai->requestCount(), 2);
}

QTEST_GUILESS_MAIN(ProvidersTest)
#include "tst_it_providers.moc"
